"""Loading migration files: good files load, malformed ones give one line naming file and field."""

from __future__ import annotations

import textwrap

import pytest

from migration_dags.errors import SpecError, UnsafeIdentifierError
from migration_dags.identifiers import TableName
from migration_dags.spec import load_migration

GOOD = """
name: {name}
description: demo
tables: [users]
settings: {{batch_size: 500, lock_timeout_ms: 200}}
operations:
  - add_column:
      table: users
      column: {{name: flag, type: boolean, default: 'false', nullable: false}}
"""


def write(folder, name, text):
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_load_reads_every_field(migrations_dir):
    m = load_migration(write(migrations_dir, "m1", GOOD.format(name="m1")))
    assert m.name == "m1"
    assert m.tables == [TableName("public", "users")]
    assert m.settings.batch_size == 500 and m.settings.lock_timeout_ms == 200
    assert [op.kind for op in m.operations] == ["add_column"]
    assert m.existing_tables() == [TableName("public", "users")]


def test_schema_qualified_and_odd_table_names_load(migrations_dir):
    text = """
    name: odd
    operations:
      - add_column: {table: 'sales.Order Items', column: {name: 'Note "x"', type: text}}
      - add_column: {table: {schema: s, name: 'a.b'}, column: {name: c, type: 'numeric(10,2)'}}
    """
    m = load_migration(write(migrations_dir, "odd", text))
    assert m.operations[0].table == TableName("sales", "Order Items")
    assert m.operations[1].table == TableName("s", "a.b")
    assert m.operations[1].table.sql == '"s"."a.b"'


MALFORMED = {
    "yaml_syntax": ("name: [unclosed\n", "line"),
    "top_level_list": ("- a\n- b\n", "(top level)"),
    "missing_name": ("operations: [{raw_sql: {up: 'select 1', down: 'select 1'}}]\n", "name"),
    "name_not_file": ("name: other\noperations: [{raw_sql: {up: 'x', down: 'y'}}]\n", "name"),
    "bad_name_case": ("name: BadName\noperations: [{raw_sql: {up: 'x', down: 'y'}}]\n", "name"),
    "no_operations": ("name: {n}\n", "operations"),
    "empty_operations": ("name: {n}\noperations: []\n", "operations"),
    "unknown_operation": ("name: {n}\noperations: [{add_colum: {table: t}}]\n", "operations[0]"),
    "two_keys_in_operation": (
        "name: {n}\noperations: [{raw_sql: {up: x, down: y}, add_column: {}}]\n", "operations[0]"),
    "missing_column_type": (
        "name: {n}\noperations: [{add_column: {table: t, column: {name: c}}}]\n",
        "operations[0].add_column.column.type"),
    "unknown_field_typo": (
        "name: {n}\noperations: [{add_column: {table: t, colum: {name: c, type: int}}}]\n",
        "operations[0].add_column"),
    "raw_sql_without_down": (
        "name: {n}\noperations: [{raw_sql: {up: 'select 1'}}]\n", "operations[0].raw_sql.down"),
    "type_injection": (
        "name: {n}\noperations: [{add_column: {table: t, column: {name: c, type: 'int; DROP TABLE t'}}}]\n",
        "operations[0].add_column.column.type"),
    "negative_batch_size": (
        "name: {n}\nsettings: {batch_size: -5}\noperations: [{raw_sql: {up: x, down: y}}]\n",
        "settings.batch_size"),
    "string_lock_timeout": (
        "name: {n}\nsettings: {lock_timeout_ms: soon}\noperations: [{raw_sql: {up: x, down: y}}]\n",
        "settings.lock_timeout_ms"),
    "bad_row_count_rule": (
        "name: {n}\nvalidation: {row_count: roughly}\noperations: [{raw_sql: {up: x, down: y}}]\n",
        "validation.row_count"),
    "negative_row_count_tolerance": (
        "name: {n}\nvalidation: {row_count_tolerance: -1}\noperations: [{raw_sql: {up: x, down: y}}]\n",
        "validation.row_count_tolerance"),
    "depends_on_mapping": (
        "name: {n}\ndepends_on: {a: 1}\noperations: [{raw_sql: {up: x, down: y}}]\n", "depends_on"),
    "database_env_lowercase": (
        "name: {n}\ndatabase: {url_env: my_url}\noperations: [{raw_sql: {up: x, down: y}}]\n",
        "database.url_env"),
    "not_null_without_fill": (
        "name: {n}\noperations: [{add_column: {table: t, column: {name: c, type: int, nullable: false}}}]\n",
        "operations[0].add_column.column.nullable"),
    "tables_not_list": ("name: {n}\ntables: users\noperations: [{raw_sql: {up: x, down: y}}]\n", "tables"),
    "empty_file": ("", "(top level)"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_file_gives_one_line_naming_file_and_field(migrations_dir, case):
    text, field = MALFORMED[case]
    path = migrations_dir / f"{case}.yaml"
    path.write_text(text.replace("{n}", case))
    with pytest.raises(SpecError) as info:
        load_migration(path)
    message = info.value.one_line()
    assert "\n" not in message
    assert message.startswith(str(path))
    assert field in message, message


@pytest.mark.parametrize(
    "name, why",
    [
        ("a" * 64, "longer than"),
        ("bad\x00name", "control characters"),
        (" padded", "white space"),
        ("", "empty"),
    ],
)
def test_unsafe_identifiers_are_refused(migrations_dir, name, why):
    path = migrations_dir / "ident.yaml"
    import yaml

    path.write_text(yaml.safe_dump({
        "name": "ident",
        "operations": [{"add_column": {"table": "t", "column": {"name": name, "type": "int"}}}],
    }))
    with pytest.raises(UnsafeIdentifierError) as info:
        load_migration(path)
    assert "operations[0].add_column.column.name" in str(info.value)
    assert why in str(info.value)


def test_missing_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError) as info:
        load_migration(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(info.value)
