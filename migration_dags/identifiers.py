"""Identifiers: the only place names are checked and quoted for SQL.

Every name a user writes goes through `check_identifier` at load time and `quote` when SQL is built,
so odd names (`Order Items`, `"weird"`, `ÜberTabelle`) work and nothing a user writes can close a quote.
The quoting itself is psycopg's (`psycopg.sql`), rendered without a connection because SQL is built
before one exists (plan, trigger bodies, DO blocks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from psycopg.sql import Identifier, Literal

MAX_IDENTIFIER_BYTES = 63
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def identifier_problem(name: object) -> str | None:
    """Why `name` cannot be an identifier, or None when it can."""
    if not isinstance(name, str):
        return f"must be a string, got {type(name).__name__}"
    if name == "":
        return "must not be empty"
    if _CONTROL.search(name):
        return "must not contain control characters"
    if name != name.strip():
        return "must not start or end with white space"
    if len(name.encode()) > MAX_IDENTIFIER_BYTES:
        return f"is longer than PostgreSQL's {MAX_IDENTIFIER_BYTES} bytes and would be truncated"
    return None


def quote(name: str) -> str:
    """Quote one identifier for PostgreSQL: `Order Items` becomes `"Order Items"`, and a double quote
    inside a name is doubled."""
    return Identifier(name).as_string()


def literal(value: str) -> str:
    r"""Quote a string literal: `'it''s'`.

    A value holding a backslash comes out as ` E'a\\b'` (psycopg's form without a connection, the
    leading space keeping it apart from a preceding token): it reads the same whatever the server's
    standard_conforming_strings, where a plain `'a\b'` would depend on it."""
    return Literal(value).as_string()


@dataclass(frozen=True, order=True)
class TableName:
    schema: str
    name: str

    @classmethod
    def parse(cls, text: str, default_schema: str = "public") -> "TableName":
        """`users` or `sales.users`; a name with a dot in it needs the mapping form."""
        if "." in text:
            schema, name = text.split(".", 1)
            return cls(schema, name)
        return cls(default_schema, text)

    @property
    def sql(self) -> str:
        """`"schema"."name"`; a dot inside either part stays inside its quotes."""
        return Identifier(self.schema, self.name).as_string()

    @property
    def regclass_literal(self) -> str:
        return literal(self.sql)

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


def short_name(*parts: str, limit: int = MAX_IDENTIFIER_BYTES) -> str:
    """Join parts with '__' and keep it within PostgreSQL's limit, adding a hash when cut."""
    import hashlib

    joined = "__".join(parts)
    if len(joined.encode()) <= limit:
        return joined
    digest = hashlib.sha1(joined.encode()).hexdigest()[:10]
    head = joined.encode()[: limit - 12].decode("utf-8", "ignore")
    return f"{head}__{digest}"
