"""pytest plugin of the fuzz suite: writes the counts and prints the summary table at the end of the run."""

from __future__ import annotations

import pytest

from tests.fuzz import tally


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not tally.COUNTS:
        return
    tally.save()
    terminalreporter.write_sep("=", "fuzz cases")
    terminalreporter.write_line(tally.table({k: dict(v) for k, v in tally.COUNTS.items()}))
    failed = [r.nodeid for r in terminalreporter.stats.get("failed", []) if "test_fuzz.py" in r.nodeid]
    terminalreporter.write_line(f"bugs found in this run (failed fuzz tests): {len(failed)} {' '.join(failed)}")
    terminalreporter.write_line(f"bugs found before and fixed, with their regression tests: {len(tally.BUGS_FIXED)}")
    terminalreporter.write_line(f"(counts in {tally.REPORT}; a failed property fails its test)")
