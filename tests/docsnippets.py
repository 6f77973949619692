"""The shell snippets of the documentation, and how tests run them (tests/test_docs_snippets.py).

Every ```sh block of a page is one of the kinds in KINDS, told by its info string (```sh, ```sh cluster...);
docs/index.md ("Snippets") documents them. Plain ```sh blocks run, page by page, as one session on SQLite and on
PostgreSQL: the page's files (```yaml title="FILE", or a yaml block whose first line is ``# FILE.yaml``) are
written, then each line runs; ``# exit N: ESxxx`` is its expected exit code and error code, ``# --   `` and
``#   - `` lines the steps it prints, and every plan hash shown must be the one printed now (``python -m
tests.docs_refresh`` writes the current ones into the pages).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.helpers import REPO, execute, run, subprocess_env

#: The kinds of ```sh block (info string after ``sh``), and what runs each.
KINDS: dict[str, str] = {
    "": "run as a session on SQLite and PostgreSQL by tests/test_docs_snippets.py",
    "server": "starts a server: each line runs on a free port until /readyz answers (tests/test_docs_snippets.py)",
    "cluster": "needs a Kubernetes API server (kubectl, the operator's `run`): runs against a real one "
    "(tests/test_docs_snippets.py, marker k8s)",
    "full-cluster": "needs what the test control plane lacks: nodes that run pods, the image in a registry, "
    "cert-manager or the Prometheus operator (helm install --wait, rollout status); tests/test_chart.py and "
    "tests/test_plugin_chart.py install the charts against the real API server instead",
    "build": "builds or pushes a container image (docker, buildah, a registry): tests/test_image.py builds it",
    "dev": "a development target of this repository (make ...): CI runs them",
    "profile": "sets up your interactive shell (completion): the extschema command of each line runs and prints",
    "approval": "ways to approve the plan an operator waits on (alternatives, not a session): "
    "tests/test_kubectl_plugin.py runs them against the real API server, on the resource whose hash they show",
}

#: The resource ```sh approval blocks show: tests/test_kubectl_plugin.py's orders, 1.0.0 then 2.0.0 without note.
_ORDERS = (
    "apiVersion: extschema.io/v1alpha1\nkind: ExtensionSchema\nmetadata: {name: orders}\nspec:\n"
    "  pluginId: orders\n  version: VERSION\n  tables:\n    - name: item\n      fields:\n"
    "        - {name: title, type: String}\n"
)
APPROVAL_SPECS = [
    _ORDERS.replace("VERSION", "1.0.0") + "        - {name: note, type: Text}\n",
    _ORDERS.replace("VERSION", "2.0.0"),
]


def approval_hash(workdir: Path, url: str) -> str:
    """The hash of the plan the operator waits on in ```sh approval blocks (the same on both databases)."""
    workdir.mkdir(parents=True, exist_ok=True)
    for number, text in enumerate(APPROVAL_SPECS, 1):
        (workdir / f"orders-{number}.yaml").write_text(text)
    outcome = run("apply", str(workdir / "orders-1.yaml"), "-d", url)
    assert outcome.exit_code == 0, outcome.stderr
    outcome = run("plan", str(workdir / "orders-2.yaml"), "-d", url, "-o", "json")
    assert outcome.exit_code == 0, outcome.stderr
    return str(outcome.item()["hash"])


_NOTES = (
    "apiVersion: extschema.io/v1alpha1\nkind: ExtensionSchema\nmetadata: {name: notes}\nspec:\n"
    "  pluginId: field_notes\n  version: VERSION\n  description: Notes taken in the field\n"
    "  deletionPolicy: Retain\n  enums:\n    - {name: severity, values: [info, warning, critical]}\n"
    "  tables:\n    - name: note\n      fields:\n"
    "        - {name: title, type: String, required: true, validation: {minLength: 1, maxLength: 120}}\n"
    "BODY        - {name: severity, type: Enum, enum: severity, required: true, default: info}\n"
    "        - {name: taken_at, type: DateTime, required: true, default: now}\n"
)


def _plan_hash(workdir: Path, url: str, first: str, then: str) -> str:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "first.yaml").write_text(first)
    (workdir / "then.yaml").write_text(then)
    outcome = run("apply", str(workdir / "first.yaml"), "-d", url)
    assert outcome.exit_code == 0, outcome.stderr
    outcome = run("plan", str(workdir / "then.yaml"), "-d", url, "-o", "json")
    assert outcome.exit_code == 0, outcome.stderr
    return str(outcome.item()["hash"])


def example_hashes(workdir: Path, url: str) -> dict[str, str]:
    """The hashes of the plans pages show without running them, as extschema makes them now: what each is."""
    found = {"docs/kubectl-plugin.md's orders 1.0.0 -> 2.0.0": approval_hash(workdir / "a", url)}
    # The same schema at 0.9.0: another base, so another hash (docs/kubectl-plugin.md's targets at 0.9.0); a
    # database of its own (hashes are the same on both kinds).
    found["docs/kubectl-plugin.md's orders 0.9.0 -> 2.0.0 (another base)"] = _plan_hash(
        workdir / "a9",
        f"sqlite:///{workdir / 'a9.db'}",
        APPROVAL_SPECS[0].replace("version: 1.0.0", "version: 0.9.0"),
        APPROVAL_SPECS[1],
    )
    found["docs/helm-plugins.md's field_notes 1.0.0 -> 2.0.0 (examples/plugin-chart)"] = _plan_hash(
        workdir / "b",
        url,
        _NOTES.replace("VERSION", "1.0.0").replace("BODY", "        - {name: body, type: Text}\n"),
        _NOTES.replace("VERSION", "2.0.0").replace("BODY", ""),
    )
    shop = {file_name(b): b.body for b in blocks("docs/evolution.md") if b.language == "yaml" and file_name(b)}
    found["docs/evolution.md's shop-v1.yaml -> shop-v2.yaml"] = _plan_hash(
        workdir / "c", url, shop["shop-v1.yaml"], shop["shop-v2.yaml"]
    )
    outcome = run("delete", "shop", "-d", url, "--dry-run", "-o", "json")
    assert outcome.exit_code == 0, outcome.stderr
    found["deleting docs/evolution.md's shop-v1.yaml"] = str(outcome.item()["hash"])
    return found


#: A hash no plan has: what a page shows as a mistyped one (ES308).
MISTYPED = "0123456789abcdef"
#: A plan hash as text shows it (not a part of a longer word, like a token's suffix).
SHOWN_HASH = re.compile(r"(?<![\w-])[0-9a-f]{16}(?![\w-])")


def session_hashes(page: str) -> set[str]:
    """The hashes of the page's sessions (its ```sh blocks and files), checked when they run."""
    if not runnable(page):
        return set()
    texts = [b.body for b in blocks(page) if (b.language == "sh" and b.kind == "") or file_name(b)]
    return {h for text in texts for h in SHOWN_HASH.findall(text)}


def approval_hashes(page: str) -> set[str]:
    return {h for b in blocks(page) if b.language == "sh" and b.kind == "approval" for h in HASH.findall(b.body)}


#: Pages that run their ```sh blocks with their own test (which also compares what the commands print).
RUNNERS: dict[str, str] = {
    "docs/analyze.md": "tests/test_analyze.py::test_the_documented_session_runs_as_written",
    "docs/api-management.md": "tests/test_api_management.py::test_the_session_on_the_page_runs_against_extschema_serve",
    "docs/prisma.md": "tests/test_prisma.py::test_docs_page_runs_as_written",
    "docs/types.md": "tests/test_types.py::test_the_types_page_runs_as_written",
}

HASH = re.compile(r"\b[0-9a-f]{16}\b")
_BLOCK = re.compile(r"^( *)```(\w*)([^\n]*)\n(.*?)^\1```", re.DOTALL | re.MULTILINE)


def pages() -> list[str]:
    """Every page with shell snippets users read: docs/*.md, README.md, the examples' and the charts' READMEs."""
    found = [*sorted(REPO.glob("docs/*.md")), REPO / "README.md", *sorted(REPO.glob("examples/*/README.md"))]
    found += sorted(REPO.glob("charts/*/README.md"))
    return [str(p.relative_to(REPO)) for p in found]


@dataclasses.dataclass(frozen=True)
class Block:
    language: str
    kind: str  # the info string's words after the language, without title="..."
    title: str | None
    body: str
    line: int


def blocks(page: str) -> list[Block]:
    text = (REPO / page).read_text()
    found = []
    for match in _BLOCK.finditer(text):
        indent, language, info, body = match.groups()
        title = re.search(r'title="([^"]+)"', info)
        kind = re.sub(r'title="[^"]*"', "", info).strip()
        body = "".join(line[len(indent) :] if line.startswith(indent) else line for line in body.splitlines(True))
        at = text.count("\n", 0, match.start()) + 1
        found.append(Block(language, kind, title.group(1) if title else None, body, at))
    return found


def file_name(block: Block) -> str | None:
    """The file a yaml block is: its title, or the name on its first line (``# shop-v1.yaml``)."""
    if block.title:
        return block.title
    first = re.fullmatch(r"# (\S+\.ya?ml)", block.body.partition("\n")[0])
    return first.group(1) if first else None


def lines(body: str) -> list[tuple[str, list[str]]]:
    """A block's commands (continuation lines joined), each with the comment lines that follow it."""
    commands: list[tuple[str, list[str]]] = []
    pending = ""
    for line in body.splitlines():
        if pending:
            line, pending = pending + line.lstrip(), ""
        if line.endswith("\\"):
            pending = line[:-1]
        elif line.startswith("#"):
            assert commands, f"a comment before any command: {line}"
            commands[-1][1].append(line)
        elif line.strip():
            commands.append((line, []))
    return commands


@dataclasses.dataclass
class Session:
    """One page's commands, in one working directory, on SQLite (url None) or PostgreSQL (url)."""

    page: str
    workdir: Path
    url: str | None
    #: (hash shown on the page, hash printed now) for every stale one
    stale: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def swap(self, command: str) -> str:
        if self.url is not None:
            return re.sub(r"sqlite:///\S+\.db|postgresql://[^\s\"']+", self.url, command)
        return re.sub(r"postgresql://[^\s\"']+", "sqlite:///app.db", command)

    def _seen(self, shown: str, now: str) -> None:
        if shown != now and (shown, now) not in self.stale:
            self.stale.append((shown, now))

    def _current_hash(self, args: list[str]) -> str:
        """The hash ``plan`` gives now for what ``apply ARGS`` would run."""
        planned = ["plan", *args[1:]]
        while "--approve" in planned:
            at = planned.index("--approve")
            del planned[at : at + 2]
        outcome = run(*planned, "-o", "json")
        assert outcome.exit_code == 0, (self.page, planned, outcome.stderr)
        return str(outcome.item()["hash"])

    def run_line(self, line: str, outputs: list[str]) -> None:
        command, _, comment = line.partition(" # ")
        command = self.swap(command)
        expected = re.match(r"\s*exit (\d+)(?:: (ES\d{3}))?", comment)
        exit_code = int(expected.group(1)) if expected else 0
        code = expected.group(2) if expected else None
        args = shlex.split(command)
        where = f"{self.page}: {line}"
        if args[0] == "python":
            done = subprocess.run(
                [sys.executable, *args[1:]], cwd=self.workdir, env=subprocess_env(), capture_output=True, check=False
            )
            assert done.returncode == exit_code, (where, done.stderr)
            return
        if args[0] == "sqlite3":
            if self.url is None:
                with sqlite3.connect(self.workdir / args[1]) as conn:
                    conn.executescript(args[2])
            else:  # ext_<plugin>__<table> is the table <table> of schema ext_<plugin> on PostgreSQL
                for statement in filter(str.strip, args[2].split(";")):
                    execute(self.url, re.sub(r"\bext_(\w+?)__(\w+)", r'"ext_\1"."\2"', statement))
            return
        assert args[0] == "extschema", f"{where}: the test cannot run this (mark the block, docs/index.md#snippets)"
        args = args[1:]
        if "--approve" in args and args[0] != "apply" and code != "ES308":  # delete, rollback: as their ES307 says
            asked = run(*[a for i, a in enumerate(args) if "--approve" not in args[i - 1 : i + 1]])
            now = re.findall(r"--approve ([0-9a-f]{16})", asked.stderr)[-1:]
            assert now, f"{where}: without --approve it asks for no approval:\n{asked.stdout}{asked.stderr}"
            self._seen(args[args.index("--approve") + 1], now[0])
            args[args.index("--approve") + 1] = now[0]
        if args[0] == "apply" and code != "ES308":  # a hash shown to approve is the plan's hash now
            if "--approve" in args:
                now = self._current_hash(args)
                self._seen(args[args.index("--approve") + 1], now)
                args[args.index("--approve") + 1] = now
            for path in (self.workdir / a for a in args if a.endswith(".yaml")):
                shown = re.search(r"approvedPlanHash: ([0-9a-f]+)", path.read_text())
                if shown:
                    now = self._current_hash(args)
                    self._seen(shown.group(1), now)
                    path.write_text(path.read_text().replace(shown.group(1), now))
        into = None
        if len(args) > 2 and args[-2] == ">":  # the output written to a file, as the shell would
            args, into = args[:-2], self.workdir / args[-1]
        outcome = run(*args)
        if into is not None:
            into.write_text(outcome.stdout)
        printed = outcome.stdout + outcome.stderr
        assert outcome.exit_code == exit_code, f"{where}: exit {outcome.exit_code}\n{printed}"
        assert code is None or code in outcome.stderr, (where, outcome.stderr)
        for output in outputs:  # the plan's header and steps, an apply's steps, the page shows are the ones printed
            if not output.startswith(("# -- ", "#   - ")):
                continue
            if self.url is not None:  # PostgreSQL: its own backup names and statements (SQLite rebuilds tables)
                if "backed up" in output or re.search(r"\d+ statements", output):
                    continue
                output = re.sub(r"\s*\[statements? [\d-]+\]$", "", output)
            assert output[2:] in outcome.stdout, (where, output, outcome.stdout)
        now = set(HASH.findall(printed))
        for shown in HASH.findall("\n".join(outputs)):
            if shown not in now:
                assert len(now) == 1, f"{where}: shows hash {shown}, which it does not print:\n{printed}"
                self._seen(shown, next(iter(now)))

    def profile(self, line: str) -> None:
        """Run the extschema command inside a line of shell setup (``source <(extschema completion bash)``)."""
        found = re.search(r"\bextschema((?: [\w-]+)+)", line.partition(" # ")[0])
        assert found, f"{self.page}: {line}: no extschema command in it"
        outcome = run(*found.group(1).split())
        assert outcome.exit_code == 0 and outcome.stdout.strip(), (self.page, line, outcome.stderr)

    def serve(self, line: str) -> None:
        """Start the server the line starts (on a free port), wait until it is ready, stop it."""
        args = shlex.split(self.swap(line.partition(" # ")[0]))
        args = args[3:] if args[:3] == ["python", "-m", "extschema"] else args[1:]
        assert args[0] == "serve", f"{self.page}: {line}: only `extschema serve` runs as a server"
        port = _free_port()
        if "--port" in args:
            args[args.index("--port") + 1] = str(port)
        else:
            args += ["--port", str(port)]
        server = subprocess.Popen(
            [sys.executable, "-m", "extschema", *args],
            cwd=self.workdir,
            env=subprocess_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait_ready(f"http://127.0.0.1:{port}", server, f"{self.page}: {line}")
        finally:
            server.terminate()
            server.communicate(timeout=30)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_ready(base: str, server: subprocess.Popen[bytes], where: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            errors = server.communicate()[1]
            raise AssertionError(f"{where}: exited {server.returncode}: {(errors or b'').decode()}")
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{where}: not ready within a minute")


def run_page(page: str, workdir: Path, url: str | None) -> Session:
    """Write the page's files into *workdir* (the current directory) and run its snippets in order."""
    session = Session(page, workdir, url)
    page_blocks = blocks(page)
    files = {name: b.body for b in page_blocks if b.language == "yaml" and (name := file_name(b))}
    for b in page_blocks:
        if b.language in ("python", "json", "ts") and b.title and "#" not in b.title:
            files[b.title] = b.body
    for name, text in files.items():
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).write_text(text)
    for b in page_blocks:
        if b.language != "sh" or b.kind not in ("", "server", "profile"):
            continue
        for line, outputs in lines(b.body):
            if b.kind == "profile":
                session.profile(line)
            elif b.kind == "server":
                session.serve(line)
            else:
                session.run_line(line, outputs)
    return session


def runnable(page: str) -> bool:
    return page not in RUNNERS and any(b.language == "sh" and b.kind in ("", "server", "profile") for b in blocks(page))


def _is_run(line: str) -> bool:
    return line.startswith(("extschema run ", "python -m extschema run "))


def cluster_steps(body: str) -> list[tuple[str, str]]:
    """A ```sh cluster block as steps: ("operator", line) starts the operator, ("shell", text) runs in bash."""
    steps: list[tuple[str, str]] = []
    chunk: list[str] = []
    for line, _ in lines(body):
        if _is_run(line):
            if chunk:
                steps.append(("shell", "\n".join(chunk)))
                chunk = []
            steps.append(("operator", line))
        else:
            chunk.append(line)
    if chunk:
        steps.append(("shell", "\n".join(chunk)))
    return steps


@dataclasses.dataclass
class ClusterSession:
    """A page's ```sh cluster blocks against a real API server, with *url* as every operator's database."""

    page: str
    workdir: Path
    url: str
    kubeconfig: Path
    kubectl: Path
    operators: list[subprocess.Popen[bytes]] = dataclasses.field(default_factory=list)

    def env(self) -> dict[str, str]:
        path = os.pathsep.join([str(self.kubectl.parent), str(Path(sys.executable).parent), os.environ["PATH"]])
        return subprocess_env(KUBECONFIG=str(self.kubeconfig), PATH=path, EXTSCHEMA_RECHECK_SECONDS="1")

    def shell(self, text: str) -> None:
        text = re.sub(r"postgresql://[^\s\"']+|sqlite:///\S+\.db", self.url, text)
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", text],
            cwd=self.workdir,
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert done.returncode == 0, f"{self.page}: {text}\nexit {done.returncode}\n{done.stdout}{done.stderr}"

    def operator(self, line: str) -> None:
        """Start the operator as the line does (its database swapped), and wait until it is ready."""
        args = shlex.split(re.sub(r"postgresql://[^\s\"']+|sqlite:///\S+\.db", self.url, line.partition(" # ")[0]))
        args = args[3:] if args[0] == "python" else args[1:]
        port = _free_port()
        log = open(self.workdir / f"operator-{len(self.operators)}.log", "wb")  # noqa: SIM115 - kept by the child
        server = subprocess.Popen(
            [sys.executable, "-m", "extschema", *args, "--readiness", f"http://127.0.0.1:{port}/readyz"],
            cwd=self.workdir,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.operators.append(server)
        try:
            _wait_ready(f"http://127.0.0.1:{port}", server, f"{self.page}: {line}")
        except AssertionError as failed:
            raise AssertionError(f"{failed}\n{self.logs()}") from None

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.workdir.glob("operator-*.log")))

    def stop(self) -> None:
        for server in self.operators:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()

    def run(self) -> int:
        ran = 0
        for b in blocks(self.page):
            if b.language == "sh" and b.kind == "cluster":
                for step, text in cluster_steps(b.body):
                    self.operator(text) if step == "operator" else self.shell(text)
                ran += 1
        return ran
