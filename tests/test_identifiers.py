"""Quoting names and literals: odd names and odd text reach PostgreSQL exactly as written."""

from __future__ import annotations

import pytest

from pydantic import TypeAdapter

from migration_dags.spec.types import TableRef
from migration_dags.identifiers import TableName, literal, quote

ODD_NAMES = ["Order Items", '"weird"', "ÜberTabelle", "it's", "back\\slash", "a.b"]
ODD_TEXT = ["plain", "it's", "a\\b", "\\", "\\'", "C:\\new\\table", "Über ☃", "'; DROP TABLE t; --", "$$"]


def test_quote_doubles_embedded_double_quotes():
    assert quote("Order Items") == '"Order Items"'
    assert quote('"weird"') == '"""weird"""'
    assert TableName("public", "a.b").sql == '"public"."a.b"'


def test_literal_doubles_embedded_single_quotes():
    assert literal("it's") == "'it''s'"
    assert TableName("sales", "Order Items").regclass_literal == "'\"sales\".\"Order Items\"'"


@pytest.mark.parametrize("name", ODD_NAMES)
def test_an_odd_table_name_is_created_found_and_written_as_written(conn, name):
    table = TableName("public", name)
    conn.execute(f"CREATE TABLE {table.sql} ({quote(name)} text)")
    conn.execute(f"INSERT INTO {table.sql} ({quote(name)}) VALUES ({literal(name)})")

    found = conn.execute(
        f"SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE c.oid = {table.regclass_literal}::regclass"
    ).fetchone()
    assert found == ("public", name)
    assert conn.execute(f"SELECT {quote(name)} FROM {table.sql}").fetchone() == (name,)


def test_a_dotted_name_in_the_mapping_form_is_one_table_in_its_schema(conn):
    table = TypeAdapter(TableRef).validate_python({"schema": "Sales Dept", "name": "a.b"})
    conn.execute(f"CREATE SCHEMA {quote(table.schema)}")
    conn.execute(f"CREATE TABLE {table.sql} (id int)")

    assert (table.schema, table.name) == ("Sales Dept", "a.b")
    assert conn.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'Sales Dept' AND tablename = 'a.b'"
    ).fetchone() == (1,)
    assert conn.execute(f"SELECT to_regclass({table.regclass_literal}) IS NOT NULL").fetchone() == (True,)


@pytest.mark.parametrize("standard_conforming_strings", ["on", "off"])
def test_literals_read_back_exactly_whatever_the_server_does_with_backslashes(
        conn, standard_conforming_strings):
    conn.execute(f"SET standard_conforming_strings = {standard_conforming_strings}")
    conn.execute("SET escape_string_warning = off")

    for text in ODD_TEXT:
        assert conn.execute(f"SELECT {literal(text)}").fetchone() == (text,), text
        assert conn.execute(f"SELECT 'x' ||{literal(text)}").fetchone() == ("x" + text,), text
