"""schemathesis against ``extschema serve`` (uvicorn, real HTTP) over the examples, on SQLite and PostgreSQL.

Bounded and seeded: ``st run --checks all`` with a few examples per operation and a token with every scope;
zero failures. One check is left out: ``positive_data_acceptance`` expects every schema-valid request to be
accepted, which no JSON Schema of this API can promise — a list cursor is valid only as the server signed it,
a Decimal sent as a string has bounds only the server can compare, and a 64-bit bound is a double in JSON
Schema tools (9223372036854775999 passes a ``maximum`` of 2**63 - 1). Its mirror, ``negative_data_rejection``
(what the schema forbids is refused), runs.
"""

from __future__ import annotations

import hashlib
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import EXAMPLES, execute, load_core, run, subprocess_env

TOKEN = "schemathesis-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_schemathesis_finds_no_failure(db_url: str, tmp_path: Path) -> None:
    load_core(db_url)
    execute(db_url, "INSERT INTO work_orders (id, title) VALUES (1, 'Pump'), (2, 'Valve')")
    execute(db_url, "INSERT INTO equipment (id, serial_number, name) VALUES (1, 'SN-1', 'Press')")
    assert run("apply", str(EXAMPLES), "-d", db_url).exit_code == 0
    tokens = tmp_path / "tokens.yaml"
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    tokens.write_text(f"tokens:\n  - {{name: schemathesis, sha256: {digest}, scopes: [admin]}}\n")
    port = _free_port()
    log = tmp_path / "server.log"
    command = [sys.executable, "-m", "extschema", "serve", "-d", db_url, "--port", str(port), "--tokens", str(tokens)]
    with log.open("w") as output:
        server = subprocess.Popen(command, env=subprocess_env(), stdout=output, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        st = Path(sys.executable).parent / "st"
        found = subprocess.run(
            [
                str(st),
                "run",
                f"{base}/openapi.json",
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance",
                "--max-examples",
                "3",
                "--seed",
                "1",
                "--workers",  # one: with two, schemathesis once crashed inside hypothesis (describing a lambda)
                "1",
                "--header",
                f"Authorization: Bearer {TOKEN}",
                "--report",
                "junit",
                "--report-dir",
                str(tmp_path / "report"),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env=subprocess_env(),
            cwd=tmp_path,  # its example database (.schemathesis/) stays out of the checkout
        )
        assert found.returncode == 0, found.stdout[-6000:] + found.stderr[-2000:]
        selected = re.search(r"Selected: (\d+)/(\d+)", found.stdout)
        tested = re.search(r"Tested: (\d+)", found.stdout)
        assert selected and tested and selected.group(1) == selected.group(2) == tested.group(1), found.stdout
        assert int(tested.group(1)) >= 26  # at least every entity operation of the four examples
    finally:
        server.terminate()
        server.wait(timeout=30)
    served = log.read_text()
    assert "Traceback" not in served and "ES715" not in served, served[-4000:]
