// Check Prisma schemas with @prisma/prisma-schema-wasm (the validator and formatter the prisma CLI bundles).
// stdin: a JSON list; each item is a schema's text, or a list of [uri, text] files validated together
// (a schema folder: e.g. the host's datasource file and a fragment), the last being the one formatted.
// stdout: a JSON list, one {valid, error, formatted, dmmf} per item; `formatted` is what
// `prisma format` writes for the (last) file, `dmmf` get_dmmf's datamodel (both null when invalid).
// With --lines: one such JSON list per stdin line, answered by one line each (one process for many checks).
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";

const wasm = createRequire(import.meta.url)("@prisma/prisma-schema-wasm");

function check(item) {
  const files = typeof item === "string" ? [["file:/schema.prisma", item]] : item;
  const uri = files[files.length - 1][0];
  const params = JSON.stringify({ prismaSchema: files, noColor: true });
  try {
    wasm.validate(params);
  } catch (error) {
    return { valid: false, error: String(error.message ?? error), formatted: null, dmmf: null };
  }
  // format takes the file list (the old single-string form returns its input unchanged, silently).
  const options = { textDocument: { uri }, options: { tabSize: 2, insertSpaces: true } };
  const formatted = JSON.parse(wasm.format(JSON.stringify(files), JSON.stringify(options)));
  if (!Array.isArray(formatted)) {
    throw new Error(`format returned ${JSON.stringify(formatted).slice(0, 200)}, not a list of files`);
  }
  const found = formatted.find(([name]) => name === uri);
  if (found === undefined) throw new Error(`format returned no ${uri}`);
  const dmmf = JSON.parse(wasm.get_dmmf(params));
  return { valid: true, error: null, formatted: found[1], dmmf: dmmf.datamodel };
}

if (process.argv.includes("--lines")) {
  for await (const line of createInterface({ input: process.stdin })) {
    process.stdout.write(JSON.stringify(JSON.parse(line).map(check)) + "\n");
  }
} else {
  process.stdout.write(JSON.stringify(JSON.parse(readFileSync(0, "utf8")).map(check)));
}
