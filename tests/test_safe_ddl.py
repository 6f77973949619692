"""Safe DDL: new enum values committed before use, concurrent index builds, lock-timeout retries."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import execute, ext_table, run, write_schema
from tests.specs import SHOP


def _apply(url: str, directory: Path, body: str, *options: str) -> tuple[int, str]:
    outcome = run("apply", str(write_schema(directory, "shop", body)), "-d", url, *options)
    return outcome.exit_code, outcome.stdout + outcome.stderr


def test_enum_value_added_and_used_in_one_migration(db_url: str, tmp_path: Path) -> None:
    """A new enum value that a new column uses as its default: PostgreSQL refuses the new label in
    the transaction that added it (55P04), so the value is committed in its own step first."""
    assert _apply(db_url, tmp_path, SHOP)[0] == 0
    order = ext_table(db_url, "shop", "order")
    execute(db_url, f"INSERT INTO {order} (title, state) VALUES ('a', 'done')")
    v2 = (
        SHOP.replace("version: 1.0.0", "version: 1.1.0")
        .replace("values: [new, done]", "values: [new, paid, done]")
        .rstrip("\n")
        + "\n      - {name: billing, type: Enum, enum: state, required: true, default: paid}\n"
    )
    code, output = _apply(db_url, tmp_path, v2)
    assert code == 0, output
    assert execute(db_url, f"SELECT title, state, billing FROM {order}") == [("a", "done", "paid")]
    rolled = run("rollback", "shop", "-d", db_url)
    assert rolled.exit_code == 0, rolled.stderr
    assert execute(db_url, f"SELECT title, state FROM {order}") == [("a", "done")]
    with pytest.raises(Exception, match=r"(?i)enum|check|constraint"):
        execute(db_url, f"INSERT INTO {order} (title, state) VALUES ('c', 'paid')")
