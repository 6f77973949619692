"""A PostgreSQL server the chaos suite can crash: ``pg_ctl stop -m immediate`` (no shutdown checkpoint, every
backend killed, crash recovery at the next start) and a start on the same data directory and port."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.pgserver import _as_server_user, find_bindir, free_port


class PgServer:
    """initdb in *root*, a free port; ``url`` is the admin URL (trust authentication, user postgres)."""

    def __init__(self, root: Path) -> None:
        self.root, self.bindir, self.port = root, find_bindir(), free_port()
        self.data, self.sockets = root / "data", root / "sock"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(_as_server_user(list(args)), check=check, capture_output=True, text=True, timeout=120)

    def init(self) -> PgServer:
        self.root.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.sockets, "postgres")
        initdb = [str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust"]
        self._run(*initdb, "--no-sync", "-E", "UTF8", "--locale=C")
        return self.start()

    def start(self) -> PgServer:
        # fsync on: an immediate stop must lose nothing a COMMIT acknowledged (the suite counts rows).
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c max_connections=200 "
            "-c synchronous_commit=on -c fsync=on"
        )
        pg_ctl = str(self.bindir / "pg_ctl")
        self._run(pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "-t", "60", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        """``immediate``: a crash as far as the data is concerned (recovery replays the WAL at the next start)."""
        if self.data.exists():
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
