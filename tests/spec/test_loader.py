"""Loading migration files: good files load, malformed ones give one line naming file and field."""

from __future__ import annotations

import dataclasses
import textwrap

import pytest

from migration_dags.errors import SpecError, UnsafeIdentifierError
from migration_dags.identifiers import TableName
from migration_dags.spec import MigrationSettings, load_migration

pytestmark = pytest.mark.offline

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
        "name: {n}\noperations: [{raw_sql: {up: 'select 1', down: 'select 2'}, add_column: {}}]\n", "operations[0]"),
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
        "name: {n}\nsettings: {batch_size: -5}\noperations: [{raw_sql: {up: 'select 1', down: 'select 2'}}]\n",
        "settings.batch_size"),
    "string_lock_timeout": (
        "name: {n}\nsettings: {lock_timeout_ms: soon}\noperations: [{raw_sql: {up: 'select 1', down: 'select 2'}}]\n",
        "settings.lock_timeout_ms"),
    "bad_row_count_rule": (
        "name: {n}\nvalidation: {row_count: roughly}\noperations: [{raw_sql: {up: 'select 1', down: 'select 2'}}]\n",
        "validation.row_count"),
    "negative_row_count_tolerance": (
        "name: {n}\nvalidation: {row_count_tolerance: -1}\noperations: [{raw_sql: {up: x, down: y}}]\n",
        "validation.row_count_tolerance"),
    "depends_on_mapping": (
        "name: {n}\ndepends_on: {a: 1}\noperations: [{raw_sql: {up: 'select 1', down: 'select 2'}}]\n", "depends_on"),
    "database_env_lowercase": (
        "name: {n}\ndatabase: {url_env: my_url}\noperations: [{raw_sql: {up: 'select 1', down: 'select 2'}}]\n",
        "database.url_env"),
    "not_null_without_fill": (
        "name: {n}\noperations: [{add_column: {table: t, column: {name: c, type: int, nullable: false}}}]\n",
        "operations[0].add_column.column.nullable"),
    "tables_not_list": ("name: {n}\ntables: users\noperations: [{raw_sql: {up: 'select 1', down: 'select 2'}}]\n", "tables"),
    "tables_item_not_a_name": (
        "name: {n}\ntables: [users, 7]\noperations: [{raw_sql: {up: 'select 1', down: 'select 2'}}]\n", "tables[1]"),
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


DUPLICATE_KEYS = {
    "top_level": ("name: {n}\nname: {n}\noperations: [{raw_sql: {up: 'select 1', down: 'select 2'}}]\n", "name", (1, 2)),
    "in_settings": (
        "name: {n}\nsettings:\n  retries: 1\n  batch_size: 5\n  retries: 2\n"
        "operations: [{raw_sql: {up: 'select 1', down: 'select 2'}}]\n", "settings.retries", (3, 5)),
    "in_an_operation": (
        "name: {n}\noperations:\n  - raw_sql: {up: 'select 1', down: 'select 2'}\n  - add_column:\n      table: users\n"
        "      column: {name: c, type: int}\n      table: orders\n",
        "operations[1].add_column.table", (5, 7)),
    "in_a_flow_mapping": (
        "name: {n}\noperations: [{raw_sql: {up: 'select 1', down: 'select 2', up: 'select 3'}}]\n", "operations[0].raw_sql.up", (2, 2)),
}


@pytest.mark.parametrize("case", sorted(DUPLICATE_KEYS))
def test_a_key_written_twice_is_refused_naming_its_path_and_lines(migrations_dir, case):
    """PyYAML would keep the second value silently: `table: orders` would win unseen."""
    text, field, (first, again) = DUPLICATE_KEYS[case]
    path = migrations_dir / f"{case}.yaml"
    path.write_text(text.replace("{n}", case))
    with pytest.raises(SpecError) as info:
        load_migration(path)
    assert info.value.field == field
    assert f"lines {first} and {again}" in info.value.message
    assert "\n" not in info.value.one_line()


def test_a_merge_key_may_be_overridden(migrations_dir):
    text = """
    name: merged
    settings:
      <<: {retries: 1, batch_size: 5}
      retries: 2
    operations: [{raw_sql: {up: 'select 1', down: 'select 2'}}]
    """
    m = load_migration(write(migrations_dir, "merged", text))
    assert (m.settings.retries, m.settings.batch_size) == (2, 5)


def test_a_key_without_a_value_is_left_out(migrations_dir):
    text = """
    name: blanks
    description:
    settings: {retries: ~}
    operations:
      - add_column: {table: users, column: {name: c, type: int, default: ~}, up: ~}
    """
    m = load_migration(write(migrations_dir, "blanks", text))
    assert m.description == "" and m.settings == MigrationSettings()
    assert m.operations[0].default is None and m.operations[0].up is None


def test_every_setting_can_be_written_in_the_file(migrations_dir):
    written = {f.name: getattr(MigrationSettings(), f.name) + 1 for f in dataclasses.fields(MigrationSettings)}
    text = f"name: all_settings\nsettings: {written}\noperations: [{{raw_sql: {{up: 'select 1', down: 'select 2'}}}}]\n"
    m = load_migration(write(migrations_dir, "all_settings", text))
    assert m.settings == MigrationSettings(**written)


def test_missing_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError) as info:
        load_migration(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(info.value)
