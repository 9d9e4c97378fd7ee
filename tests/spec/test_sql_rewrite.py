"""sql_rewrite: catalog DDL adapted to another column or relation in the parsed tree, never by
string replace."""

from __future__ import annotations

import pytest

from migration_dags.spec.sql_rewrite import (
    check_condition,
    constraint_kind,
    index_is_unique,
    on_relation,
    rename_column_in_check,
    rename_column_in_index,
    view_query,
)

pytestmark = pytest.mark.offline

INDEX = ("CREATE INDEX items_code_idx ON public.items USING gin (lower(code)) "
         "WHERE (code <> 'code'::text AND other.code IS NULL)")
CHECK = "ALTER TABLE public.items ADD CONSTRAINT code_ok CHECK (((code <> ''::text) AND (items.code <> codes)))"


def test_an_index_moves_to_the_new_column_and_a_literal_of_the_same_text_stays():
    sql = rename_column_in_index(INDEX, "code", "mdg_new__code", "mdg_new__items_code_idx")
    assert sql.startswith("CREATE INDEX CONCURRENTLY IF NOT EXISTS mdg_new__items_code_idx")
    assert "lower(mdg_new__code)" in sql and "'code'" in sql and "USING gin" in sql
    assert "other.mdg_new__code" in sql  # a qualified reference: the index's own table


def test_a_check_moves_to_the_new_column_not_valid():
    sql = rename_column_in_check(CHECK, "code", "mdg_old__code", "mdg_old__code_ok")
    assert "ADD CONSTRAINT mdg_old__code_ok CHECK" in sql and sql.endswith("NOT VALID")
    assert "items.mdg_old__code <> codes" in sql  # `codes` is another column
    assert check_condition(CHECK, "code", "x") == "x <> CAST('' AS text) AND items.x <> codes"


def test_kinds():
    assert constraint_kind(CHECK) == "check"
    assert constraint_kind("ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u(id)") == "foreign key"
    assert constraint_kind("ALTER TABLE t ADD CONSTRAINT u UNIQUE (a)") == "unique"
    assert index_is_unique("CREATE UNIQUE INDEX i ON t (a)") and not index_is_unique(INDEX)


def test_on_relation_and_view_query_keep_the_old_name_as_alias():
    assert on_relation(INDEX, ("pg_temp", "stand_in")).startswith("CREATE INDEX ON pg_temp.stand_in")
    query = view_query(
        "CREATE VIEW public.v AS SELECT items.code, c.n FROM public.items JOIN public.counts c "
        "ON c.id = items.id WHERE items.id IN (SELECT id FROM public.items)",
        {("public", "items"): ("pg_temp", "t")})
    assert query == ("SELECT items.code, c.n FROM pg_temp.t AS items INNER JOIN public.counts AS c "
                     "ON c.id = items.id WHERE items.id IN (SELECT id FROM pg_temp.t AS items)")
