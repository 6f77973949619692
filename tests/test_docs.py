"""The documentation says what the code does: every error code is documented, every example is run."""

from __future__ import annotations

import re

from extschema.problems import CATALOG
from tests.helpers import EXAMPLES, REPO


def test_every_error_code_is_documented_and_no_other() -> None:
    documented = set(re.findall(r"^\| (ES\d{3}) \|", (REPO / "docs" / "errors.md").read_text(), re.MULTILINE))
    assert documented == set(CATALOG)


def test_every_code_in_the_catalog_is_used_by_the_code() -> None:
    sources = "\n".join(
        p.read_text()
        for p in (REPO / "operator" / "extschema").rglob("*.py")
        if p != REPO / "operator" / "extschema" / "problems.py"  # the catalog itself (api/problems.py uses codes)
    )
    unused = [code for code in CATALOG if f'"{code}"' not in sources]
    assert not unused


def test_readme_gives_the_two_commands() -> None:
    readme = (REPO / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.MULTILINE) and re.search(r"^test:", makefile, re.MULTILINE)


def test_every_example_is_exercised_by_the_tests() -> None:
    """test_cli applies examples/ (every top-level file) and examples/rejected/ (must fail)."""
    cli_tests = (REPO / "tests" / "test_cli.py").read_text()
    assert 'run("apply", str(EXAMPLES)' in cli_tests and 'str(EXAMPLES / "rejected")' in cli_tests
    top_level = sorted(p.name for p in EXAMPLES.glob("*.yaml"))
    assert top_level == ["comments.yaml", "custom-reports.yaml", "equipment-inspections.yaml", "knowledge-base.yaml"]
    assert [p.name for p in (EXAMPLES / "rejected").glob("*.yaml")] == ["report-takeover.yaml"]
