"""A small in-memory model of the tables a migration touches, read from the live catalog.

Operations validate against it in order and then apply their change to it, so the third operation
of a migration is checked against the schema the first two will have made (pgroll does the same).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import psycopg

from .expand.version_schema import VERSION_SCHEMA_MARK

from .fingerprint import PARTITION_TREE
from .identifiers import TableName


@dataclass
class ColumnModel:
    name: str
    type_sql: str
    nullable: bool
    default_sql: str | None


@dataclass
class TableModel:
    name: TableName
    columns: dict[str, ColumnModel] = field(default_factory=dict)
    primary_key: list[str] = field(default_factory=list)
    indexes: set[str] = field(default_factory=set)
    constraints: set[str] = field(default_factory=set)
    # column -> names of views that read it (dropping or retyping it would break them)
    dependent_views: dict[str, list[str]] = field(default_factory=dict)
    # column -> user triggers that name it where PostgreSQL does not follow a rename or see a
    # drop: in their arguments (tsvector_update_trigger(..., 'description')) or as NEW.col /
    # OLD.col in their function's body; each "name (how)"
    triggers_naming: dict[str, list[str]] = field(default_factory=dict)
    # column -> what reads it by number and keeps PostgreSQL from dropping it (a row-level
    # security policy, a generated column, a trigger's UPDATE OF or WHEN): "policy doc_owner"
    column_readers: dict[str, list[str]] = field(default_factory=dict)
    # partitioned table: column -> the indexes and constraints a partition has of its own over it
    # (not attached to the parent's), which dropping the column drops with it and nothing puts
    # back: "index payment_p2022_01_customer_idx", "constraint fk of payment_p2022_01"
    partition_dependents: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class SchemaModel:
    tables: dict[TableName, TableModel] = field(default_factory=dict)
    # index and constraint names are per schema in PostgreSQL
    relations: set[tuple[str, str]] = field(default_factory=set)
    # "schema.name" of relations a raw_sql earlier in the migration declares it drops
    dropped: set[str] = field(default_factory=set)

    def table(self, name: TableName) -> TableModel | None:
        return self.tables.get(name)


def read_schema(conn: psycopg.Connection, names: set[TableName]) -> SchemaModel:
    model = SchemaModel()
    for name in sorted(names):
        table = _read_table(conn, name)
        if table is not None:
            model.tables[name] = table
    schemas = sorted({n.schema for n in names})
    if schemas:
        rows = conn.execute(
            """SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = ANY(%s)
               UNION ALL
               SELECT n.nspname, co.conname FROM pg_constraint co
               JOIN pg_namespace n ON n.oid = co.connamespace WHERE n.nspname = ANY(%s)""",
            (schemas, schemas),
        ).fetchall()
        model.relations = {(s, r) for s, r in rows}
    return model


def _read_table(conn: psycopg.Connection, name: TableName) -> TableModel | None:
    row = conn.execute(
        """SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')""",
        (name.schema, name.name),
    ).fetchone()
    if row is None:
        return None
    oid = row[0]
    table = TableModel(name)
    for col, typ, notnull, default in conn.execute(
        """SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                  pg_get_expr(d.adbin, d.adrelid)
           FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
           WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum""",
        (oid,),
    ):
        table.columns[col] = ColumnModel(col, typ, not notnull, default)
    table.primary_key = primary_key_columns(conn, name)
    table.indexes = {
        r[0]
        for r in conn.execute(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = %s",
            (oid,),
        )
    }
    table.constraints = {
        r[0] for r in conn.execute("SELECT conname FROM pg_constraint WHERE conrelid = %s", (oid,))
    }
    for col, view in conn.execute(
        """SELECT DISTINCT a.attname, vn.nspname || '.' || v.relname
           FROM pg_depend d
           JOIN pg_rewrite r ON r.oid = d.objid
           JOIN pg_class v ON v.oid = r.ev_class AND v.oid <> d.refobjid
           JOIN pg_namespace vn ON vn.oid = v.relnamespace
           JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
           WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = %s AND d.refobjsubid > 0
             -- not the tool's own views of an expanded migration (expand/version_schema.py)
             AND coalesce(obj_description(vn.oid, 'pg_namespace'), '') NOT LIKE %s""",
        (oid, VERSION_SCHEMA_MARK + " of migration %"),
    ):
        table.dependent_views.setdefault(col, []).append(view)
    table.triggers_naming = _triggers_naming(conn, oid, list(table.columns))
    for col, reader in conn.execute(
        """SELECT a.attname, CASE d.classid
                  WHEN 'pg_policy'::regclass THEN
                      (SELECT 'policy ' || quote_ident(polname) FROM pg_policy WHERE oid = d.objid)
                  WHEN 'pg_attrdef'::regclass THEN
                      (SELECT 'generated column ' || quote_ident(g.attname) FROM pg_attrdef ad
                       JOIN pg_attribute g ON g.attrelid = ad.adrelid AND g.attnum = ad.adnum
                       WHERE ad.oid = d.objid)
                  ELSE (SELECT 'trigger ' || quote_ident(tgname) || ' (UPDATE OF or WHEN)'
                        FROM pg_trigger WHERE oid = d.objid AND tgname NOT LIKE 'mdg\\_%%')
                  END
           FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
           WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = %s AND d.refobjsubid > 0
             AND d.deptype = 'n'
             AND d.classid IN ('pg_policy'::regclass, 'pg_attrdef'::regclass, 'pg_trigger'::regclass)
           ORDER BY 1, 2""",
        (oid,),
    ):
        if reader is not None:
            table.column_readers.setdefault(col, []).append(reader)
    for col, what in conn.execute(
        PARTITION_TREE + """
           SELECT DISTINCT a.attname, CASE WHEN d.classid = 'pg_class'::regclass
                      THEN 'index ' || d.objid::regclass::text
                      ELSE 'constraint ' || k.conname || ' of ' || d.refobjid::regclass::text END
           FROM pg_depend d JOIN tree ON d.refobjid = tree.oid
           JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
           LEFT JOIN pg_constraint k ON d.classid = 'pg_constraint'::regclass AND k.oid = d.objid
           WHERE d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0
             AND d.deptype IN ('a', 'n')
             AND ((d.classid = 'pg_class'::regclass
                   AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indexrelid = d.objid)
                   AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = d.objid)
                   AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = d.objid))
               OR (d.classid = 'pg_constraint'::regclass AND k.conparentid = 0))
           ORDER BY 1, 2""",
        (name.sql,),
    ):
        table.partition_dependents.setdefault(col, []).append(what)
    return table


def _triggers_naming(conn: psycopg.Connection, oid: int, columns: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, args, function, body in conn.execute(
        """SELECT t.tgname, t.tgargs, p.oid::regproc::text, p.prosrc FROM pg_trigger t
           JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace pn ON pn.oid = p.pronamespace
           WHERE t.tgrelid = %s AND NOT t.tgisinternal AND t.tgparentid = 0
             -- not the tool's own triggers
             AND pn.nspname NOT LIKE 'migration\\_dags%%' AND t.tgname NOT LIKE 'mdg\\_%%'""",
        (oid,),
    ):
        arguments = [a.decode(errors="replace") for a in bytes(args).split(b"\0")[:-1]]
        for col in columns:
            if col in arguments:
                found.setdefault(col, []).append(f"{name} (names it in its arguments)")
            elif body and _reads_row_field(body, col):
                found.setdefault(col, []).append(f"{name} (its function {function} reads NEW/OLD.{col})")
    return found


def _reads_row_field(body: str, column: str) -> bool:
    """NEW.col or OLD.col in a function's source (a quoted "col" exactly, an unquoted one in any
    case when the name is lower case, as PostgreSQL folds it)."""
    quoted = re.escape('"' + column.replace('"', '""') + '"')
    pattern = rf'\b(?:new|old)\s*\.\s*(?:{quoted}'
    if column == column.lower() and re.fullmatch(r"[a-z_][a-z0-9_$]*", column):
        pattern += rf"|{re.escape(column)}\b"
    return re.search(pattern + ")", body, flags=re.IGNORECASE) is not None


def primary_key_columns(conn: psycopg.Connection, name: TableName) -> list[str]:
    """The primary key, else the first unique index whose columns are all NOT NULL; [] if none."""
    rows = conn.execute(
        """SELECT i.indisprimary, array_agg(a.attname ORDER BY k.ord) AS cols,
                  bool_and(a.attnotnull) AS all_not_null
           FROM pg_index i
           JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
           CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
           WHERE n.nspname = %s AND c.relname = %s AND i.indisunique AND i.indisvalid
             AND i.indpred IS NULL AND i.indexprs IS NULL
           GROUP BY i.indexrelid, i.indisprimary
           ORDER BY i.indisprimary DESC, i.indexrelid""",
        (name.schema, name.name),
    ).fetchall()
    for is_primary, cols, all_not_null in rows:
        if is_primary or all_not_null:
            return list(cols)
    return []
