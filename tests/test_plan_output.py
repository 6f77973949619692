"""``extschema plan`` as people and CI read it, on both databases: numbered steps and statements (text and
JSON agree), ``--summary``, ``--detailed-exitcode``, backup names as apply writes them, lint findings about
the author's choices only, and approval messages that say what is gated and what went wrong."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from extschema.dialects.base import attribute_steps
from tests.helpers import Outcome, execute, ext_table, run, write_schema

V1 = """
pluginId: shop
version: 1.0.0
enums:
  - {name: state, values: [new, done]}
tables:
  - name: order
    fields:
      - {name: title, type: String, required: true}
      - {name: note, type: String}
      - {name: amount, type: Decimal, precision: 12, scale: 2}
      - {name: state, type: Enum, enum: state}
"""
#: Safe steps (a rename, a new enum value) around a destructive one (note dropped).
V2 = (
    V1.replace("version: 1.0.0", "version: 2.0.0")
    .replace("values: [new, done]", "values: [new, done, void]")
    .replace(
        "{name: title, type: String, required: true}",
        "{name: heading, type: String, required: true, renamedFrom: title}",
    )
    .replace("      - {name: note, type: String}\n", "")
)
#: Only safe: a new nullable field.
SAFE = V1.replace("version: 1.0.0", "version: 1.1.0").replace(
    "      - {name: note, type: String}\n", "      - {name: note, type: String}\n      - {name: extra, type: Text}\n"
)


def _schema(directory: Path, body: str, variant: str = "") -> str:
    """The spec as resource ``shop`` (its owner), in a directory of its own per *variant*."""
    (directory / variant).mkdir(exist_ok=True)
    return str(write_schema(directory / variant, "shop", body))


def _seed(url: str, directory: Path) -> None:
    assert run("apply", _schema(directory, V1), "-d", url).exit_code == 0
    execute(url, f"INSERT INTO {ext_table(url, 'shop', 'order')} (title, note, amount) VALUES ('a', 'n', 1.5)")


def _plan(url: str, path: str, *args: str) -> Outcome:
    outcome = run("plan", path, "-d", url, *args)
    assert outcome.exit_code in (0, 10, 11), outcome.stderr
    return outcome


def _json(url: str, path: str, *args: str) -> Any:
    return _plan(url, path, "-o", "json", *args).item()


def test_statements_are_numbered_under_the_step_they_carry_out(db_url: str, tmp_path: Path) -> None:
    _seed(db_url, tmp_path)
    path = _schema(tmp_path, V2)
    plan = _json(db_url, path)
    sql, steps, ops = plan["sql"], plan["sqlSteps"], plan["ops"]
    assert len(steps) == len(sql) and all(0 <= s < len(ops) for s in steps)
    # In the order they run: PostgreSQL adds an enum value (step 2) before the migration's transaction.
    assert steps == sorted(steps) or db_url.startswith("postgresql")
    text = _plan(db_url, path).stdout
    # The step list: numbered, each with the statements that carry it out (as sqlSteps says).
    for number, op in enumerate(ops, start=1):
        line = next(x for x in text.splitlines() if x.startswith(f"--  {number:>2}. "))
        assert op["description"] in line
        own = [i + 1 for i, s in enumerate(steps) if s == number - 1]
        if own:
            assert (f"statement {own[0]}" if len(own) == 1 else f"statements {own[0]}-{own[-1]}") in line
    # Each statement printed once, numbered, after the header of its step.
    numbered = re.findall(r"^/\* (\d+) \*/ ", text, re.MULTILINE)
    assert numbered == [str(i + 1) for i in range(len(sql))]
    headers = [m.start() for m in re.finditer(r"^-- step (\d+): ", text, re.MULTILINE)]
    assert len(headers) == len(set(steps))
    for index, step in enumerate(steps):
        at = text.index(f"/* {index + 1} */ ")
        header = max(h for h in headers if h < at)
        assert text[header:].startswith(f"-- step {step + 1}: ")
    # The rename and the new value are safe steps; ES307 names only the destructive one.
    refused = run("apply", path, "-d", db_url, "-o", "json")
    assert refused.exit_code == 1
    (es307,) = [p for p in refused.json()["problems"] if p["code"] == "ES307"]
    drop = next(n for n, op in enumerate(ops, start=1) if op["kind"] == "drop_column")
    assert f"step {drop} drop column order.note (1 values)" in es307["message"]
    assert "rename" not in es307["message"] and "add values" not in es307["message"]


def test_long_lines_are_broken_where_a_break_changes_nothing(db_url: str, tmp_path: Path) -> None:
    _seed(db_url, tmp_path)
    path = _schema(tmp_path, V2)
    plan = _json(db_url, path)
    text = _plan(db_url, path).stdout
    longest = max(len(line) for s in plan["sql"] for line in s.splitlines())
    assert max(len(line) for line in text.splitlines() if not line.startswith("-- lint")) <= max(140, 0)
    if db_url.startswith("sqlite"):
        assert longest > 300, "the Decimal CHECK is long on SQLite: the text breaks it"
    # Broken only at whitespace outside quotes: the same statements, word for word.
    printed = re.split(r"^/\* \d+ \*/ ", text, flags=re.MULTILINE)[1:]
    words = [" ".join(chunk.split("\n-- ")[0].rsplit(";", 1)[0].split()) for chunk in printed]
    assert words == [" ".join(s.split()) for s in plan["sql"]]


def test_summary_has_no_sql(db_url: str, tmp_path: Path) -> None:
    _seed(db_url, tmp_path)
    path = _schema(tmp_path, V2)
    full = _json(db_url, path)
    text = _plan(db_url, path, "--summary").stdout
    assert full["hash"] in text and "/* 1 */" not in text and "-- step " not in text
    assert re.search(r"-- 3 steps \(2 safe, 1 destructive\), \d+ statements", text), text
    assert "drop column order.note (1 values)" in text
    summary = _json(db_url, path, "--summary")
    assert (summary["sql"], summary["sqlSteps"], summary["rollbackSql"]) == (None, None, None)
    assert {k: v for k, v in summary.items() if k not in ("sql", "sqlSteps", "rollbackSql")} == {
        k: v for k, v in full.items() if k not in ("sql", "sqlSteps", "rollbackSql")
    }


def test_detailed_exitcode_tells_ci_what_the_plan_found(db_url: str, tmp_path: Path) -> None:
    v1 = _schema(tmp_path, V1)
    assert run("plan", v1, "-d", db_url, "--detailed-exitcode").exit_code == 10  # a new plugin: changes
    _seed(db_url, tmp_path)
    assert run("plan", v1, "-d", db_url, "--detailed-exitcode").exit_code == 0  # applied: no change
    assert run("plan", v1, "-d", db_url).exit_code == 0  # without the flag: always 0
    safe = _schema(tmp_path, SAFE)
    assert run("plan", safe, "-d", db_url, "--detailed-exitcode", "-o", "json").exit_code == 10
    v2 = _schema(tmp_path, V2)
    outcome = run("plan", v2, "-d", db_url, "--detailed-exitcode", "--summary")
    assert outcome.exit_code == 11 and "needs approval" in outcome.stdout
    # Approved in the spec: apply would run it as it is.
    approved = _schema(tmp_path, f"{V2}approvedPlanHash: {_json(db_url, v2)['hash']}", "approved")
    assert run("plan", approved, "-d", db_url, "--detailed-exitcode").exit_code == 10
    # A failure keeps its own code.
    broken = _schema(tmp_path, V1.replace("type: Decimal", "type: Decimals"), "broken")
    assert run("plan", broken, "-d", db_url, "--detailed-exitcode").exit_code == 1


def test_the_plan_names_backups_as_apply_writes_them(db_url: str, tmp_path: Path) -> None:
    _seed(db_url, tmp_path)
    path = _schema(tmp_path, V2)
    plan = _json(db_url, path)
    assert not any("mplanned" in s for s in plan["sql"])
    outcome = run("apply", path, "-d", db_url, "--approve", plan["hash"], "-o", "json")
    assert outcome.exit_code == 0, outcome.stderr
    (applied,) = outcome.items()
    backups = [b["backupTable"] for b in run("backups", "shop", "-d", db_url, "-o", "json").items()]
    assert applied["migration"] == "0002" and backups
    for table in backups:
        assert any(table.split(".")[-1] in s for s in plan["sql"]), (table, plan["sql"])


def test_approvals_that_cannot_match_say_what_is_wrong(db_url: str, tmp_path: Path) -> None:
    _seed(db_url, tmp_path)
    v1 = _schema(tmp_path, V1)
    # Not a hash at all: a usage error, even when nothing would change.
    for bad in ("nothex", "0123456789ABCDEF", "0123"):
        outcome = run("apply", v1, "-d", db_url, "--approve", bad, "-o", "json")
        assert outcome.exit_code == 2 and [p["code"] for p in outcome.json()["problems"]] == ["ES320"]
    v2 = _schema(tmp_path, V2)
    current = _json(db_url, v2)["hash"]
    # One digit off the plan's hash: a typo.
    typo = current[:-1] + ("0" if current[-1] != "0" else "1")
    problems = run("apply", v2, "-d", db_url, "--approve", typo, "-o", "json").json()["problems"]
    (es308,) = [p for p in problems if p["code"] == "ES308"]
    assert "mistyped" in es308["message"] and current in es308["message"]
    # The hash of the plan reviewed before the spec changed: a changed plan, not a typo.
    before = _json(db_url, _schema(tmp_path, SAFE.replace("1.1.0", "2.0.0"), "earlier"))["hash"]
    problems = run("apply", v2, "-d", db_url, "--approve", before, "-o", "json").json()["problems"]
    (es308,) = [p for p in problems if p["code"] == "ES308"]
    assert "changed since" in es308["message"] and "mistyped" not in es308["message"]


def test_an_approval_of_an_earlier_plan_is_named_as_one(db_url: str, tmp_path: Path) -> None:
    _seed(db_url, tmp_path)
    v2 = _schema(tmp_path, V2)
    reviewed = _json(db_url, v2)["hash"]
    # Another change runs first: the plan reviewed for v2 is not v2's plan any more.
    assert run("apply", _schema(tmp_path, SAFE, "safe"), "-d", db_url).exit_code == 0
    problems = run("apply", v2, "-d", db_url, "--approve", reviewed, "-o", "json").json()["problems"]
    (es308,) = [p for p in problems if p["code"] == "ES308"]
    assert "this spec's plan before migration 0002 ran (from 1.0.0)" in es308["message"], es308
    # v2 applied with its approval in the spec; v3 keeps that approval: it is the plan that already ran.
    now = _json(db_url, v2)["hash"]
    assert run("apply", _schema(tmp_path, f"{V2}approvedPlanHash: {now}", "approved"), "-d", db_url).exit_code == 0
    v3 = V2.replace("version: 2.0.0", "version: 3.0.0").replace("      - {name: state, type: Enum, enum: state}\n", "")
    left = _schema(tmp_path, f"{v3}approvedPlanHash: {now}", "approved")
    problems = run("apply", left, "-d", db_url, "-o", "json").json()["problems"]
    (es308,) = [p for p in problems if p["code"] == "ES308"]
    assert es308["path"] == "spec.approvedPlanHash"
    assert "the plan that already ran (migration 0003, to version 2.0.0)" in es308["message"], es308


def test_the_rollback_says_where_it_goes(db_url: str, tmp_path: Path) -> None:
    _seed(db_url, tmp_path)
    assert run("apply", _schema(tmp_path, SAFE), "-d", db_url).exit_code == 0
    execute(db_url, f"UPDATE {ext_table(db_url, 'shop', 'order')} SET extra = 'kept'")
    refused = run("rollback", "shop", "-d", db_url, "-o", "json")
    assert refused.exit_code == 1, refused.stdout + refused.stderr
    (es307,) = refused.json()["problems"]
    assert es307["code"] == "ES307" and es307["subject"] == "shop" and es307["path"] == "plugin"
    assert "from 1.1.0 to 1.0.0" in es307["message"] and "drop column order.extra (1 values)" in es307["message"]


def test_an_unenforced_pattern_is_said_once_per_plan_and_briefly(db_url: str, tmp_path: Path) -> None:
    spec = V1.replace(
        "      - {name: note, type: String}\n",
        "      - {name: note, type: String, validation: {pattern: '^[a-z]+(-[a-z]+)*$'}}\n"
        "      - {name: slug, type: String, validation: {pattern: '^([a-z]+-)*[a-z]+$'}}\n",
    )
    path = _schema(tmp_path, spec)
    plan = _plan(db_url, path)
    warnings = [line for line in plan.stderr.splitlines() if "ES501" in line]
    if db_url.startswith("sqlite"):
        (warning,) = warnings
        assert "order.note" in warning and "order.slug" in warning and "docs/databases.md" in warning
        assert len(warning) < 400
    else:
        assert warnings == []
    assert run("apply", path, "-d", db_url).exit_code == 0
    again = run("apply", path, "-d", db_url)
    assert again.exit_code == 0 and "ES501" not in again.stderr


@pytest.mark.postgres
def test_lint_reports_the_authors_choices_once_and_can_be_silenced(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url, tmp_path)
    path = _schema(tmp_path, V2)
    plan = _json(pg_url, path)
    rules = [f["rule"] for f in plan["lint"]]
    assert "ban-drop-column" in rules
    # extschema's own SQL (a VARCHAR for String, the rename renamedFrom asked for, the enum value's place).
    assert not {"prefer-text-field", "renaming-column", "require-enum-value-ordering"} & set(rules), rules
    assert len({(f["rule"], f["statement"]) for f in plan["lint"]}) == len(plan["lint"])
    text = _plan(pg_url, path).stdout
    (drop,) = [f for f in plan["lint"] if f["rule"] == "ban-drop-column"]
    step = plan["sqlSteps"][drop["statement"]] + 1
    assert text.count("lint warning ban-drop-column") == 1
    assert f"ban-drop-column (statement {drop['statement'] + 1}, step {step})" in text
    assert "DROP COLUMN" in text.split(f"/* {drop['statement'] + 1} */ ", 1)[1].split(";")[0]
    # Silenced on the command line, or for good in the spec (which leaves the schema's checksum alone).
    flagged = _json(pg_url, path, "--lint-ignore", "ban-drop-column")
    assert "ban-drop-column" not in [f["rule"] for f in flagged["lint"]]
    quiet = _schema(tmp_path, f"{V2}lint:\n  ignore: [ban-drop-column]\n", "quiet")
    assert "ban-drop-column" not in [f["rule"] for f in _json(pg_url, quiet)["lint"]]
    assert _json(pg_url, quiet)["hash"] == plan["hash"]
    v1_quiet = _schema(tmp_path, f"{V1}lint:\n  ignore: [prefer-bigint-over-int]\n", "v1quiet")
    again = run("apply", v1_quiet, "-d", pg_url, "-o", "json")
    assert again.exit_code == 0 and again.items()[0]["changed"] is False


def test_lint_settings_are_not_part_of_the_schema(db_url: str, tmp_path: Path) -> None:
    """spec.lint is accepted everywhere (SQLite plans are not linted) and changes no checksum: applying the
    same schema with it runs nothing, and a rule name that cannot be one is refused like any bad value."""
    _seed(db_url, tmp_path)
    quiet = _schema(tmp_path, f"{V1}lint:\n  ignore: [prefer-bigint-over-int]\n", "quiet")
    assert run("validate", quiet).exit_code == 0
    again = run("apply", quiet, "-d", db_url, "-o", "json")
    assert again.exit_code == 0 and again.items()[0]["changed"] is False
    bad = _schema(tmp_path, f"{V1}lint:\n  ignore: [Not A Rule]\n", "bad")
    refused = run("validate", bad, "-o", "json")
    assert refused.exit_code == 1 and refused.json()["problems"][0]["path"].startswith("spec.lint.ignore")


def test_statements_rendered_together_are_attributed_to_one_step_each() -> None:
    """As rendered alone; or, where a dialect merges several steps' work (one rebuild of a table for two
    changes), a merged statement goes to the step of the next statement not yet seen: one step each, in order."""
    alone = [(0, ["a1"]), (1, ["b1", "b2"]), (2, ["c1"])]
    assert attribute_steps(["a1", "b1", "b2", "c1"], alone) == [0, 1, 1, 2]
    merged = [(0, ["a1"]), (1, ["backup b", "rebuild b"]), (2, ["backup c", "rebuild c"]), (3, ["d1"])]
    steps = attribute_steps(["a1", "backup b", "backup c", "rebuild b+c", "d1"], merged)
    assert steps == [0, 1, 2, 2, 3]
    assert attribute_steps(["x", "a1"], [(0, ["a1"])]) == [0, 0]
