"""``make demo-cli``'s gated delete: a preview, the refusal without the hash, the approved delete, the restore.

Usage: python examples/gated_delete.py DATABASE_URL [PLUGIN]   (default PLUGIN: customreports, applied by the demo)
"""

from __future__ import annotations

import json
import subprocess
import sys


def extschema(*args: str, expect: int = 0) -> str:
    """Run ``extschema ARGS``, echoing the command and what it printed; exit when its exit code is not *expect*."""
    print(f"$ extschema {' '.join(args)}", flush=True)
    done = subprocess.run([sys.executable, "-m", "extschema", *args], capture_output=True, text=True, check=False)
    sys.stdout.write(done.stdout)
    sys.stdout.write(done.stderr)
    if done.returncode != expect:
        sys.exit(f"exit code {done.returncode}, expected {expect}")
    return done.stdout


def main() -> None:
    database, plugin = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "customreports"
    print("== delete: the preview (tables, rows, backups, SQL; nothing changes) ==")
    extschema("delete", plugin, "--dry-run", "-d", database)
    print("== without the hash it is refused (ES307, exit 1) ==")
    extschema("delete", plugin, "-d", database, expect=1)
    preview = json.loads(extschema("delete", plugin, "--dry-run", "-o", "json", "-d", database))
    digest = preview["items"][0]["hash"]
    print("== approved: exactly that delete runs ==")
    deleted = json.loads(extschema("delete", plugin, "--approve", digest, "-o", "json", "-d", database))
    migration = deleted["items"][0]["migration"]
    print("== and its backup brings the plugin back ==")
    extschema("restore", migration, "--dry-run", "-d", database)
    extschema("restore", migration, "-d", database)
    extschema("restore", migration, "-d", database)  # again: nothing to restore, nothing recorded


if __name__ == "__main__":
    main()
