"""What a raw_sql declares it creates or alters, applied to the schema model from its own SQL.

    - raw_sql:
        up: "CREATE TABLE audit (id bigint PRIMARY KEY, note text); ALTER TABLE prices ADD COLUMN cents int"
        down: "..."
        creates: [audit]        # tables (or views, indexes) up creates
        alters: [prices]        # tables up changes the columns of
        drops: [old_view]       # relations up drops

The tool does not run a raw_sql to learn what it does; it reads the statements of `up` with
PostgreSQL's parser for the tables it is told about, so later operations of the same migration are
validated against the schema as it will be (an add_column on the created table, an alter_column of
the added column). Understood: CREATE TABLE (columns, types, NOT NULL, defaults, primary key),
CREATE VIEW / INDEX / MATERIALIZED VIEW (the name only), and on an altered table ALTER TABLE ADD
COLUMN, DROP COLUMN, ALTER COLUMN TYPE / SET|DROP NOT NULL / SET|DROP DEFAULT, RENAME COLUMN. A
declared name up does not create, or an altered table it has no statement for, is refused at
validate, naming the field; what the statements do beyond these is not modelled.
"""

from __future__ import annotations

from typing import Any

from pglast import ast, parse_sql
from pglast.enums import AlterTableType as At, ConstrType, ObjectType
from pglast.stream import RawStream

from ...errors import SchemaValidationError
from ...identifiers import TableName
from ...schema_model import ColumnModel, SchemaModel, TableModel


def _name(rv: ast.RangeVar) -> TableName:
    return TableName(rv.schemaname or "public", rv.relname)


def _column(definition: ast.ColumnDef) -> ColumnModel:
    kinds = {c.contype: c for c in definition.constraints or ()}
    default = kinds.get(ConstrType.CONSTR_DEFAULT)
    return ColumnModel(
        definition.colname, RawStream()(definition.typeName),
        not (ConstrType.CONSTR_NOTNULL in kinds or ConstrType.CONSTR_PRIMARY in kinds),
        RawStream()(default.raw_expr) if default is not None else None)


def _created_table(stmt: ast.CreateStmt) -> TableModel:
    table = TableModel(_name(stmt.relation))
    for element in stmt.tableElts or ():
        if isinstance(element, ast.ColumnDef):
            table.columns[element.colname] = _column(element)
            if any(c.contype == ConstrType.CONSTR_PRIMARY for c in element.constraints or ()):
                table.primary_key = [element.colname]
        elif isinstance(element, ast.Constraint) and element.contype == ConstrType.CONSTR_PRIMARY:
            table.primary_key = [k.sval for k in element.keys]
    for key in table.primary_key:
        if key in table.columns:
            table.columns[key].nullable = False
    return table


def _alter(table: TableModel, cmd: ast.AlterTableCmd) -> None:
    column = table.columns.get(cmd.name) if cmd.name else None
    if cmd.subtype == At.AT_AddColumn:
        table.columns[cmd.def_.colname] = _column(cmd.def_)
    elif cmd.subtype == At.AT_DropColumn:
        table.columns.pop(cmd.name, None)
    elif column is None:
        return
    elif cmd.subtype == At.AT_AlterColumnType:
        column.type_sql = RawStream()(cmd.def_.typeName)
    elif cmd.subtype in (At.AT_SetNotNull, At.AT_DropNotNull):
        column.nullable = cmd.subtype == At.AT_DropNotNull
    elif cmd.subtype == At.AT_ColumnDefault:
        column.default_sql = RawStream()(cmd.def_) if cmd.def_ is not None else None


def _created_name(stmt: Any) -> TableName | None:
    if isinstance(stmt, (ast.CreateStmt, ast.ViewStmt)):
        return _name(stmt.relation if isinstance(stmt, ast.CreateStmt) else stmt.view)
    if isinstance(stmt, ast.CreateTableAsStmt):
        return _name(stmt.into.rel)
    if isinstance(stmt, ast.IndexStmt) and stmt.idxname:
        return TableName(stmt.relation.schemaname or "public", stmt.idxname)
    return None


def apply_declared(model: SchemaModel, where: str, up: str, creates: list[TableName],
                   alters: list[TableName]) -> None:
    """Apply to `model` what `up` does to the declared relations (see the module docstring)."""
    created, altered = set(creates), set(alters)
    seen: set[TableName] = set()
    for raw in parse_sql(up):
        stmt = raw.stmt
        name = _created_name(stmt)
        if name in created:
            seen.add(name)
            model.relations.add((name.schema, name.name))
            if isinstance(stmt, ast.CreateStmt):
                model.tables[name] = _created_table(stmt)
        elif isinstance(stmt, ast.AlterTableStmt) and _name(stmt.relation) in altered:
            table = model.tables.get(_name(stmt.relation))
            if table is not None:
                seen.add(table.name)
                for cmd in stmt.cmds:
                    _alter(table, cmd)
        elif (isinstance(stmt, ast.RenameStmt) and stmt.renameType == ObjectType.OBJECT_COLUMN
              and stmt.relation is not None and _name(stmt.relation) in altered):
            table = model.tables.get(_name(stmt.relation))
            if table is not None and stmt.subname in table.columns:
                seen.add(table.name)
                column = table.columns.pop(stmt.subname)
                column.name = stmt.newname
                table.columns[stmt.newname] = column
    for field, names in (("creates", creates), ("alters", alters)):
        missing = [str(n) for n in names if n not in seen]
        if missing:
            raise SchemaValidationError(
                f"{where}.{field}", f"up has no statement {'creating' if field == 'creates' else 'altering'} "
                f"{', '.join(missing)}; declare only what up does (CREATE TABLE/VIEW/INDEX; "
                "ALTER TABLE ... ADD/DROP/ALTER/RENAME COLUMN)")
