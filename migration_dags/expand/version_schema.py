"""Version schemas: the new shape of a migration's tables as views, beside the old shape in the
tables themselves (pgroll's convention).

While a migration is expanded, the schema `<schema>_<migration>` (`public_add_email_verification`)
holds one view per table the migration touches, showing it as it will be after `complete`:
renamed columns under their new names, dropped columns gone, a column changing type as its new
column in its place, added columns at the end (each operation's `expanded_view`). The views read
one table with plain column references, so PostgreSQL makes them updatable: a release that runs

    SET search_path = public_<migration>, public

reads and writes the new shape while the old release keeps using `public` unchanged; both land in
the same table, where the migration's triggers keep both shapes right. Inserts through a view get
the table's defaults. The views run with the caller's rights (security_invoker, PostgreSQL 15+)
and carry the table's SELECT/INSERT/UPDATE/DELETE grants; USAGE on the schema goes to the same
roles.

The schema stays after `complete` (its views then read the contracted table one to one), so a
release pointing at it keeps working. The migration's down drops it; so does the schema_change of
the next migration that touches one of its tables, once this one is complete (until then that
migration is refused: one expanded migration per table).

Each version schema carries a comment naming its migration and base schema (VERSION_SCHEMA_MARK):
that is how the tool tells its own views from the user's (schema_model.py leaves them out of a
column's dependent views) and never drops a schema it did not make.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg

from ..actions import Action
from ..errors import RefusedError
from ..identifiers import TableName, literal, quote, short_name

if TYPE_CHECKING:
    from ..operations.base import OpContext
    from ..spec import Migration

VERSION_SCHEMA_MARK = "migration_dags version schema"
_MARK_RE = re.compile(rf"^{VERSION_SCHEMA_MARK} of migration (?P<m>.+) over schema (?P<s>.+)$")


def version_schema_name(schema: str, migration: str) -> str:
    return short_name(f"{schema}_{migration}")


def _mark(migration: str, schema: str) -> str:
    return f"{VERSION_SCHEMA_MARK} of migration {migration} over schema {schema}"


def view_columns(migration: "Migration", table: TableName, columns: list[str]) -> dict[str, str]:
    """The version view's columns, in order: view column -> the table column it reads."""
    shown = {c: c for c in columns}
    for op in migration.operations:
        op.expanded_view(table, shown)
    return shown


def _tables_by_schema(migration: "Migration", ctx: "OpContext | None" = None
                      ) -> dict[str, list[TableName]]:
    """The touched tables by schema; with `ctx`, only those that exist (or that this migration's
    create_table makes): a raw_sql may name a table it creates later, or drops."""
    by_schema: dict[str, list[TableName]] = {}
    made = migration.created_tables()
    for table in sorted(migration.touched_tables(), key=str):
        if ctx is not None and table not in ctx.columns and table not in made:
            continue
        by_schema.setdefault(table.schema, []).append(table)
    return by_schema


def _view_sql(schema: str, migration: "Migration", table: TableName, ctx: "OpContext") -> str:
    view = f"{quote(schema)}.{quote(table.name)}"
    columns = ctx.columns.get(table)
    if columns is None:  # created by this migration's start, not in the catalog when planned
        select = "*"
    else:
        shown = view_columns(migration, table, columns)
        unchanged = (all(v == c for v, c in shown.items())
                     and list(shown)[:len(columns)] == list(columns))
        # only columns added at the end: the table as it is after start, `*` (the same SQL
        # whether plan read the live columns or, offline, knows none)
        select = "*" if unchanged else ", ".join(
            quote(c) if v == c else f"{quote(c)} AS {quote(v)}" for v, c in shown.items())
    return f"CREATE VIEW {view} AS SELECT {select} FROM {table.sql}"


def _rights_sql(schema: str, tables: list[TableName]) -> str:
    """security_invoker on PostgreSQL 15+, and each table's grants on its view."""
    pairs = ", ".join(f"({literal(t.sql)}, {literal(f'{quote(schema)}.{quote(t.name)}')})"
                      for t in tables)
    return f"""DO $migration_dags$
DECLARE
  pair record;
  acl record;
BEGIN
  FOR pair IN SELECT * FROM (VALUES {pairs}) AS p (source, target) LOOP
    IF current_setting('server_version_num')::int >= 150000 THEN
      EXECUTE format('ALTER VIEW %s SET (security_invoker = true)', pair.target);
    END IF;
    FOR acl IN
      SELECT a.privilege_type,
             CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END AS who
      FROM pg_class c, aclexplode(c.relacl) a
      WHERE c.oid = pair.source::regclass AND a.grantee <> c.relowner
        AND a.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE')
    LOOP
      EXECUTE format('GRANT %s ON %s TO %s', acl.privilege_type, pair.target, acl.who);
      EXECUTE format('GRANT USAGE ON SCHEMA %I TO %s', {literal(schema)}, acl.who);
    END LOOP;
  END LOOP;
END
$migration_dags$"""


def create_actions(migration: "Migration", ctx: "OpContext") -> list[Action]:
    """One action per schema the migration touches: the version schema, made anew (so a re-run
    after a crash, or after the operations' start changed the tables, shows the shape now)."""
    actions = []
    for base, tables in _tables_by_schema(migration, ctx).items():
        schema = version_schema_name(base, migration.name)
        statements = [
            f"DROP SCHEMA IF EXISTS {quote(schema)} CASCADE",
            f"CREATE SCHEMA {quote(schema)}",
            f"COMMENT ON SCHEMA {quote(schema)} IS {literal(_mark(migration.name, base))}",
            *(_view_sql(schema, migration, t, ctx) for t in tables),
            _rights_sql(schema, tables),
        ]
        actions.append(Action(
            f"version schema {schema}: the new shape of {', '.join(t.name for t in tables)} as "
            f"updatable views (a new release sets search_path = {schema}, {base})",
            ";\n".join(statements),
            # ours to drop and make anew only: a user's schema of that name stops the step
            only_if=_is_ours_sql(schema, migration.name, base, if_absent=True),
        ))
    return actions


def _is_ours_sql(schema: str, migration: str, base: str, if_absent: bool) -> str:
    """Whether `schema` carries this migration's mark; `if_absent` when there is no such schema."""
    return (f"SELECT coalesce((SELECT obj_description(oid, 'pg_namespace') = {literal(_mark(migration, base))} "
            f"FROM pg_namespace WHERE nspname = {literal(schema)}), {str(if_absent).lower()})")


def drop_actions(migration: "Migration") -> list[Action]:
    return [
        Action(f"drop version schema {schema}",
               f"DROP SCHEMA IF EXISTS {quote(schema)} CASCADE",
               only_if=_is_ours_sql(schema, migration.name, base, if_absent=False))
        for base in _tables_by_schema(migration)
        for schema in [version_schema_name(base, migration.name)]
    ]


@dataclass(frozen=True)
class VersionSchema:
    schema: str
    migration: str
    base_schema: str
    tables: frozenset[str]


def version_schemas_of(conn: psycopg.Connection) -> list[VersionSchema]:
    """Every version schema in the database, with the tables its views show."""
    rows = conn.execute(
        """SELECT n.nspname, obj_description(n.oid, 'pg_namespace'),
                  coalesce(array_agg(c.relname) FILTER (WHERE c.oid IS NOT NULL), '{}')
           FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind = 'v'
           WHERE obj_description(n.oid, 'pg_namespace') LIKE %s
           GROUP BY n.oid, n.nspname""", (f"{VERSION_SCHEMA_MARK} of migration %",)).fetchall()
    found = []
    for schema, comment, views in rows:
        match = _MARK_RE.match(comment or "")
        if match:
            found.append(VersionSchema(schema, match["m"], match["s"], frozenset(views)))
    return found


def others_in_the_way(conn: psycopg.Connection, migration: "Migration",
                      completed: set[str]) -> list[VersionSchema]:
    """Version schemas of other migrations over tables this one touches: those of complete
    migrations are returned (schema_change drops them first); one of a migration still expanded
    refuses this one, before any change, and so does a schema of the user's with the name this
    migration's version schema needs."""
    touched = {(t.schema, t.name) for t in migration.touched_tables()}
    ours = {version_schema_name(b, migration.name) for b in _tables_by_schema(migration)}
    schemas = version_schemas_of(conn)
    taken = ours & {r[0] for r in conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", (sorted(ours),))}
    taken -= {vs.schema for vs in schemas if vs.migration == migration.name}
    if taken:
        raise RefusedError(
            f"{migration.name}: schema {sorted(taken)[0]} exists and is not this migration's "
            "version schema, which needs that name; rename or drop it first")
    found = []
    for vs in schemas:
        if vs.migration == migration.name:
            continue
        shared = sorted(t for t in vs.tables if (vs.base_schema, t) in touched)
        if not shared:
            continue
        if vs.migration not in completed:
            raise RefusedError(
                f"{migration.name}: migration {vs.migration} is expanded on "
                f"{', '.join(f'{vs.base_schema}.{t}' for t in shared)} (its new shape is in "
                f"schema {vs.schema}); complete it (migration-dags complete {vs.migration}) or "
                f"roll it back first: one expanded migration per table")
        found.append(vs)
    return found


def drop_other_actions(others: list[VersionSchema]) -> list[Action]:
    return [Action(f"drop version schema {vs.schema} of complete migration {vs.migration} "
                   f"(releases should use the new one)",
                   f"DROP SCHEMA IF EXISTS {quote(vs.schema)} CASCADE") for vs in others]


def tool_view_schemas_sql() -> str:
    """A query of the names of every version schema (to leave their views out of the user's)."""
    return (f"SELECT nspname FROM pg_namespace WHERE obj_description(oid, 'pg_namespace') "
            f"LIKE {literal(VERSION_SCHEMA_MARK + ' of migration %')}")
