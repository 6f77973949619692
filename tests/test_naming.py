"""Pure unit tests of extschema.naming: shortening, both naming styles, length checks."""

from __future__ import annotations

import hashlib

import pytest

from extschema import naming
from extschema.limits import MAX_IDENTIFIER_BYTES
from extschema.naming import Namer, PhysicalName, fit

PG = Namer("schema", "public")
SQLITE = Namer("prefix")


def test_fit_keeps_short_names_and_names_of_exactly_the_limit() -> None:
    assert fit("report") == "report"
    exact = "a" * MAX_IDENTIFIER_BYTES
    assert fit(exact) == exact
    assert fit("abcdef", limit=6) == "abcdef"


def test_fit_shortens_long_names_with_a_hash_of_the_full_name() -> None:
    name = "very_long_table_name_" * 5  # 105 bytes
    short = fit(name)
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    assert len(short.encode()) <= MAX_IDENTIFIER_BYTES
    assert short.endswith(f"_{digest}")
    assert short.startswith("very_long_table_name_very_long")
    # The head is cut to leave room for "_" + 10 hex digits, trailing underscores stripped.
    head = short[: -len(digest) - 1]
    assert head == name[: MAX_IDENTIFIER_BYTES - 11].rstrip("_")
    assert not head.endswith("_")
    assert fit(name) == short  # deterministic


def test_fit_respects_a_custom_limit() -> None:
    short = fit("x" * 40, limit=20)
    assert len(short) == 20
    assert short == "x" * 9 + "_" + hashlib.sha256(("x" * 40).encode()).hexdigest()[:10]


def test_fit_cuts_multibyte_utf8_on_a_character_boundary() -> None:
    name = "ä" * 40  # 80 bytes, 2 bytes per character
    short = fit(name)
    assert len(short.encode("utf-8")) <= MAX_IDENTIFIER_BYTES
    head, _, digest = short.rpartition("_")
    # 52 bytes are available for the head: exactly 26 characters, none broken.
    assert head == "ä" * 26
    assert len(digest) == 10
    odd = "x" + "ä" * 40  # the cut falls in the middle of a character
    head_odd = fit(odd).rpartition("_")[0]
    assert head_odd == "x" + "ä" * 25
    assert "\ufffd" not in fit(odd)


def test_long_names_with_the_same_prefix_stay_distinct() -> None:
    prefix = "p" * 70
    first, second = fit(prefix + "_alpha"), fit(prefix + "_beta")
    assert first != second
    assert first[:52] == second[:52]
    assert len(first) <= MAX_IDENTIFIER_BYTES and len(second) <= MAX_IDENTIFIER_BYTES


def test_byte_length_counts_utf8_bytes() -> None:
    assert naming.byte_length("abc") == 3
    assert naming.byte_length("äbc") == 4


def test_physical_name_str() -> None:
    assert str(PhysicalName("ext_kb", "article")) == "ext_kb.article"
    assert str(PhysicalName(None, "ext_kb__article")) == "ext_kb__article"
    assert PhysicalName(None, "a") < PhysicalName(None, "b")


def test_plugin_schema() -> None:
    assert naming.plugin_schema("kb") == "ext_kb"
    assert naming.plugin_schema("custom_reports") == "ext_custom_reports"


def test_table_names_in_both_styles() -> None:
    assert PG.table("kb", "article") == PhysicalName("ext_kb", "article")
    assert SQLITE.table("kb", "article") == PhysicalName(None, "ext_kb__article")


def test_core_table_names_in_both_styles() -> None:
    assert PG.core_table("work_orders") == PhysicalName("public", "work_orders")
    assert Namer("schema", "app").core_table("work_orders") == PhysicalName("app", "work_orders")
    assert Namer("schema").core_table("work_orders") == PhysicalName(None, "work_orders")
    assert SQLITE.core_table("work_orders") == PhysicalName(None, "work_orders")


def test_enum_type_is_in_the_plugin_schema() -> None:
    assert PG.enum_type("customreports", "report_status") == PhysicalName("ext_customreports", "report_status")
    assert SQLITE.enum_type("customreports", "report_status") == PhysicalName("ext_customreports", "report_status")


def test_derived_names_use_the_table_or_the_prefixed_table() -> None:
    assert PG.derived("kb", "article", ["slug"], "key") == "article_slug_key"
    assert PG.derived("kb", "article", ["a", "b"], "idx") == "article_a_b_idx"
    assert SQLITE.derived("kb", "article", ["slug"], "key") == "ext_kb__article_slug_key"
    assert PG.derived("kb", "article", [], "pkey") == "article_pkey"


def test_derived_names_are_shortened_when_too_long() -> None:
    columns = ["a_rather_long_column_name", "another_long_column_name"]
    full = "_".join(["ext_kb__knowledge_article", *columns, "idx"])
    derived = SQLITE.derived("kb", "knowledge_article", columns, "idx")
    assert len(full) > MAX_IDENTIFIER_BYTES
    assert derived == fit(full)
    assert len(derived) <= MAX_IDENTIFIER_BYTES
    assert derived != PG.derived("kb", "knowledge_article", columns, "idx")


def test_index_names_without_a_name_are_derived() -> None:
    assert PG.index("kb", "article", ["slug"], True, None) == "article_slug_key"
    assert PG.index("kb", "article", ["title", "body"], False, None) == "article_title_body_idx"
    assert SQLITE.index("kb", "article", ["slug"], True, None) == "ext_kb__article_slug_key"
    assert SQLITE.index("kb", "article", ["title"], False, "") == "ext_kb__article_title_idx"


def test_index_names_with_a_name_keep_it() -> None:
    assert PG.index("kb", "article", ["slug"], True, "by_slug") == "by_slug"
    assert SQLITE.index("kb", "article", ["slug"], True, "by_slug") == "ext_kb__article_by_slug"
    long_name = "n" * 60
    assert SQLITE.index("kb", "article", ["slug"], False, long_name) == fit(f"ext_kb__article_{long_name}")
    assert len(SQLITE.index("kb", "article", ["slug"], False, long_name)) == MAX_IDENTIFIER_BYTES


def test_join_table_name() -> None:
    assert PG.join_table_name("article", "comment") == "article_comment"
    long = PG.join_table_name("a" * 40, "b" * 40)
    assert long == fit("a" * 40 + "_" + "b" * 40)
    assert len(long) <= MAX_IDENTIFIER_BYTES


@pytest.mark.parametrize(
    ("plugin", "table", "ok"),
    [
        ("kb", "article", True),
        # SQLite style is the longer one: "ext_" + plugin + "__" + table.
        ("p" * 10, "t" * 47, True),  # 4 + 10 + 2 + 47 = 63 bytes
        ("p" * 10, "t" * 48, False),  # 64 bytes with the prefix, fine in schema style
        ("kb", "t" * 63, False),
    ],
)
def test_physical_table_length_ok(plugin: str, table: str, ok: bool) -> None:
    assert naming.physical_table_length_ok(plugin, table) is ok


def test_physical_table_length_counts_bytes() -> None:
    # "ext_kb__" is 8 bytes; 27 two-byte characters make 62 bytes, 28 make 64.
    assert naming.physical_table_length_ok("kb", "ä" * 27) is True
    assert naming.physical_table_length_ok("kb", "ä" * 28) is False
