"""alter_column on a column with indexes and CHECK constraints: rebuilt on the shadow column (indexes
concurrently at start, checks NOT VALID + VALIDATE before the swap), swapped in under their names,
and put back exactly on down."""

from __future__ import annotations

import pytest
from operations.lifecycle import assert_unchanged_by, engine_for, run_lifecycle, run_sql
from operations.shop import migration

from migration_dags.errors import SchemaValidationError, ValidationFailedError

SETUP = """
CREATE TABLE items (id int PRIMARY KEY, code varchar(8) NOT NULL, qty int,
                    CONSTRAINT code_not_blank CHECK (code <> ''),
                    CONSTRAINT code_or_qty CHECK (length(code) < 8 OR qty IS NOT NULL));
CREATE INDEX items_code_idx ON items (code);
CREATE INDEX items_lower_code_idx ON items (lower(code)) WHERE code <> 'none';
INSERT INTO items SELECT g, 'c' || g, g % 5 FROM generate_series(1, 150) g;
"""

WIDEN = """
- alter_column: {table: items, column: code, type: text, up: "code::text", down: "code::varchar(8)"}
"""


def _definitions(conn):
    return sorted(conn.execute(
        """SELECT relname || ' ' || pg_get_indexdef(indexrelid) FROM pg_index JOIN pg_class c
             ON c.oid = indexrelid WHERE indrelid = 'items'::regclass
           UNION ALL SELECT conname || ' ' || pg_get_constraintdef(oid) || ' ' || convalidated
             FROM pg_constraint WHERE conrelid = 'items'::regclass""").fetchall())


def test_indexes_and_checks_change_type_with_the_column(database_url, migrations_dir):
    def after_up(conn):
        found = "\n".join(r[0] for r in _definitions(conn))
        assert "items_code_idx CREATE INDEX items_code_idx ON public.items USING btree (code)" in found
        assert "items_lower_code_idx" in found and "WHERE (code <> 'none'::text)" in found
        assert "code_not_blank CHECK ((code <> ''::text)) true" in found
        assert "code_or_qty" in found and "mdg" not in found
        # the index is used for the new column's values
        assert conn.execute("SELECT count(*) FROM items WHERE lower(code) = 'c7'").fetchone()[0] == 1

    run_lifecycle(database_url, migrations_dir, migration("code_text", WIDEN), SETUP,
                  after_up=after_up)


def test_indexes_are_built_at_start_and_checks_at_cutover(database_url, migrations_dir, conn):
    run_sql(database_url, SETUP)
    engine = engine_for(database_url, migrations_dir, migration("code_text_steps", WIDEN))
    engine.up("backup")
    engine.up("schema_change")
    names = [r[0].split()[0] for r in _definitions(conn)]
    assert "mdg_new__items_code_idx" in names and "mdg_new__items_lower_code_idx" in names
    assert not any(n.startswith("mdg_new__code") for n in names)  # checks wait for cutover
    plan = "\n".join(engine.plan()["cutover"])
    assert "NOT VALID" in plan and 'VALIDATE CONSTRAINT "mdg_new__code_not_blank"' in plan
    assert 'ALTER INDEX "public"."mdg_new__items_code_idx" RENAME TO "items_code_idx"' in plan


def test_a_new_value_breaking_a_check_fails_validation_before_cutover(database_url, migrations_dir):
    run_sql(database_url, SETUP)
    engine = engine_for(database_url, migrations_dir, migration("code_blank", """
        - alter_column: {table: items, column: code, type: text,
                         up: "CASE WHEN id = 3 THEN '' ELSE code::text END", down: "code::varchar(8)"}
    """))
    for step in ("backup", "schema_change", "backfill"):
        engine.up(step)
    with pytest.raises(ValidationFailedError, match="check_code_not_blank"):
        engine.up("validation")


def test_a_unique_index_on_the_column_is_refused_by_name(database_url, migrations_dir):
    run_sql(database_url, SETUP + "CREATE UNIQUE INDEX items_code_key ON items (code);")
    engine = engine_for(database_url, migrations_dir, migration("code_unique", WIDEN))
    error = assert_unchanged_by(database_url, lambda: engine.up("backup"), SchemaValidationError)
    assert "unique index items_code_key" in str(error)


def test_an_index_that_would_not_work_over_the_new_type_is_refused(database_url, migrations_dir):
    """(Over a varchar column the catalog stores `lower((code)::text)`, which works over int too;
    over a text column it stores `lower(code)`.)"""
    run_sql(database_url, """
        CREATE TABLE tags (id int PRIMARY KEY, code text);
        CREATE INDEX tags_lower_code_idx ON tags (lower(code));""")
    engine = engine_for(database_url, migrations_dir, migration("code_int", """
        - alter_column: {table: tags, column: code, type: int, up: "id", down: "code::text"}
    """))
    error = assert_unchanged_by(database_url, lambda: engine.up("backup"), SchemaValidationError)
    assert ("index tags_lower_code_idx does not work over public.tags.code as int "
            "(function lower(integer) does not exist)") in str(error)
