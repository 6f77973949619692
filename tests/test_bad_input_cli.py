"""The malformed-document suite through the CLI: exit 1, a message naming the field, no change to the database."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import run, tables
from tests.test_bad_input import CASES


def _document(spec: Any) -> str | None:
    try:
        text = yaml.safe_dump(
            {
                "apiVersion": "extschema.io/v1alpha1",
                "kind": "ExtensionSchema",
                "metadata": {"name": "bad"},
                "spec": spec,
            },
            allow_unicode=True,
        )
        text.encode("utf-8")
        yaml.load(
            text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        )  # what YAML cannot read back (lone surrogates) is covered by RAW_CASES' ES001
    except (yaml.YAMLError, UnicodeEncodeError, RecursionError, ValueError):
        return None  # not representable as a file; the pure suite covers it
    return text


FILE_CASES = [(name, text, path) for name, data, path in CASES if (text := _document(data)) is not None]
RAW_CASES = [
    ("not-yaml", "spec: [unclosed\n  - {a: b", "ES001"),
    ("tab-indentation", "apiVersion: extschema.io/v1alpha1\nkind: ExtensionSchema\nspec:\n\tpluginId: x\n", "ES001"),
    ("a-list", "- 1\n- 2\n", "ES002"),
    (
        "wrong-api-version",
        "apiVersion: extschema.io/v9\nkind: ExtensionSchema\nmetadata: {name: x}\nspec: {}\n",
        "ES003",
    ),
    ("no-schema-documents", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "ES004"),
    ("empty-file", "", "ES004"),
    (
        "integer-too-long-to-read",
        "apiVersion: extschema.io/v1alpha1\nkind: ExtensionSchema\nmetadata: {name: x}\n"
        "spec: {pluginId: x, version: 1.0.0, tables: [{name: t, fields: [{name: f, type: Int, default: 1"
        + "9" * 5000
        + "}]}]}\n",
        "ES001",
    ),
    (
        "sql-in-metadata",
        "apiVersion: extschema.io/v1alpha1\nkind: ExtensionSchema\nmetadata: {name: 1}\n"
        "spec: {pluginId: x, version: 1.0.0}\n",
        "ES010",
    ),
]


def _assert_untouched(url: str, before: set[str]) -> None:
    assert tables(url) == before
    assert run("status", "-d", url, "-o", "json").items() == []


@pytest.fixture
def empty_sqlite(sqlite_url: str) -> tuple[str, set[str]]:
    assert run("status", "-d", sqlite_url).exit_code == 0
    return sqlite_url, tables(sqlite_url)


@pytest.mark.parametrize(("text", "path"), [pytest.param(t, p, id=n) for n, t, p in FILE_CASES])
def test_malformed_document_is_refused_with_its_path(
    tmp_path: Path, empty_sqlite: tuple[str, set[str]], text: str, path: str
) -> None:
    url, before = empty_sqlite
    file = tmp_path / "bad.yaml"
    file.write_text(text, encoding="utf-8")
    outcome = run("apply", str(file), "-d", url)
    assert outcome.exit_code == 1
    # FILE:LINE:COL: PATH (the line and column of the YAML the path names)
    assert re.search(rf"{re.escape(str(file))}:\d+:\d+: {re.escape(path)}:", outcome.stderr), outcome.stderr[:2000]
    _assert_untouched(url, before)


@pytest.mark.parametrize(("text", "code"), [pytest.param(t, c, id=n) for n, t, c in RAW_CASES])
def test_unreadable_documents(tmp_path: Path, empty_sqlite: tuple[str, set[str]], text: str, code: str) -> None:
    url, before = empty_sqlite
    file = tmp_path / "bad.yaml"
    file.write_text(text)
    for command in ("validate", "apply"):
        outcome = run(command, str(file), *(("-d", url) if command == "apply" else ()))
        assert outcome.exit_code == 1
        assert code in outcome.stderr
    _assert_untouched(url, before)


def test_binary_file_and_missing_path(tmp_path: Path) -> None:
    binary = tmp_path / "blob.yaml"
    binary.write_bytes(b"\x00\xff\xfe garbage \x81")
    outcome = run("validate", str(binary))
    assert outcome.exit_code == 1
    assert "ES005" in outcome.stderr
    missing = run("validate", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 1 and "ES005" in missing.stderr


def test_two_thousand_fields_is_refused_quickly(tmp_path: Path, empty_sqlite: tuple[str, set[str]]) -> None:
    url, before = empty_sqlite
    fields = [{"name": f"f{i}", "type": "Int"} for i in range(2000)]
    text = _document({"pluginId": "wide", "version": "1.0.0", "tables": [{"name": "t", "fields": fields}]})
    assert text is not None
    file = tmp_path / "wide.yaml"
    file.write_text(text)
    outcome = run("apply", str(file), "-d", url)
    assert outcome.exit_code == 1 and "spec.tables[0]" in outcome.stderr and "ES114" in outcome.stderr
    _assert_untouched(url, before)


@pytest.mark.postgres
def test_malformed_documents_leave_postgresql_untouched(pg_url: str, tmp_path: Path) -> None:
    assert run("status", "-d", pg_url).exit_code == 0
    before = tables(pg_url)
    for name, text, path in FILE_CASES[::7]:
        file = tmp_path / f"{name}.yaml"
        file.write_text(text, encoding="utf-8")
        outcome = run("apply", str(file), "-d", pg_url)
        assert outcome.exit_code == 1, name
        assert path in outcome.stderr, (name, outcome.stderr[:500])
    _assert_untouched(pg_url, before)


# --- database URLs: whatever is wrong with one, its password never reaches a message --------------------

#: A password with the characters URL parsers split on: SQLAlchemy reads "p4ss" as the password and the rest
#: as host and port, so a message echoing what it parsed would show "w0rd".
PASSWORD = "p4ss@w0rd:zz"


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("postgresql://u:p4ss@127.0.0.1:notaport/db", "ES404"),  # a port that is not a number
        ("postgresql://u:p4ss@[::1/db", "ES404"),  # an unclosed IPv6 bracket
        ("postgresql://u:p4ss@127.0.0.1:99999/db", "ES404"),  # a port out of range
        (f"postgresql://u:{PASSWORD}@127.0.0.1/db", "ES404"),  # unescaped @ and : in the password
        ("postgres://u:p4ss@127.0.0.1/db", "ES404"),  # a scheme extschema does not support
        ("u:p4ss@127.0.0.1/db", "ES404"),  # no scheme at all
        ("postgresql://u:p4ss@127.0.0.1:1/db", "ES401"),  # nothing listens there
        ("postgresql://u@127.0.0.1:1/db?password=p4ss", "ES401"),  # the password as a query parameter
    ],
)
def test_a_database_url_never_shows_its_password(url: str, code: str) -> None:
    for command in (["status"], ["history"], ["rollback", "x"]):
        for output in ("text", "json"):
            outcome = run(*command, "-d", url, "-o", output)
            shown = outcome.stdout + outcome.stderr
            assert code in shown, (command, shown)
            assert "p4ss" not in shown and "w0rd" not in shown, (command, shown)
