"""Catalog DDL adapted to another column or relation, through PostgreSQL's parser (pglast).

alter_column rebuilds a column's indexes and CHECK constraints on its shadow column (and, on
undo, on the re-added original), and checks that the views over it still work over the new
type. The definitions come from the catalog (pg_get_indexdef, pg_get_constraintdef,
pg_get_viewdef); what changes is a column reference or a relation, so each is replaced in the
parsed tree and the statement printed again: a string replace would also hit a literal
('price'), another table's column of the same name, or a name that merely contains it.

    rename_column_in_index(ddl, column, new, name)       CREATE INDEX CONCURRENTLY IF NOT EXISTS
    rename_column_in_check(ddl, column, new, name)       ALTER TABLE ADD CONSTRAINT ... NOT VALID
    check_condition(ddl, column, new)                    the CHECK's condition alone
    constraint_kind(ddl), index_is_unique(ddl)           what a definition is
    on_relation(ddl, relation)                           an index or ALTER TABLE on another table
    view_query(create_sql, relations)                    a view's query reading other relations
"""

from __future__ import annotations

from typing import Any

from pglast import ast, parse_sql
from pglast.enums import ConstrType
from pglast.stream import RawStream

from .sql_text import walk

_KINDS = {
    ConstrType.CONSTR_CHECK: "check",
    ConstrType.CONSTR_FOREIGN: "foreign key",
    ConstrType.CONSTR_UNIQUE: "unique",
    ConstrType.CONSTR_PRIMARY: "primary key",
    ConstrType.CONSTR_EXCLUSION: "exclusion",
}


def _one(ddl: str) -> Any:
    stmts = parse_sql(ddl)
    if len(stmts) != 1:
        raise ValueError(f"expected one statement, got {len(stmts)}: {ddl[:60]}")
    return stmts[0].stmt


def _text(node: Any) -> str:
    return RawStream()(node)


def _rename_refs(tree: Any, column: str, new: str) -> None:
    """Every reference to `column` of the one table a definition is about, renamed to `new`."""
    for node in walk(tree):
        if isinstance(node, ast.ColumnRef):
            fields = list(node.fields)
            last = fields[-1]
            if isinstance(last, ast.String) and last.sval == column and len(fields) <= 2:
                fields[-1] = ast.String(sval=new)
                node.fields = tuple(fields)
        elif isinstance(node, ast.IndexElem) and node.name == column:
            node.name = new


def _constraint(stmt: Any) -> ast.Constraint:
    if not isinstance(stmt, ast.AlterTableStmt) or len(stmt.cmds) != 1:
        raise ValueError("expected ALTER TABLE ... ADD CONSTRAINT")
    constraint = stmt.cmds[0].def_
    if not isinstance(constraint, ast.Constraint):
        raise ValueError("expected ALTER TABLE ... ADD CONSTRAINT")
    return constraint


def constraint_kind(ddl: str) -> str:
    """check, foreign key, unique, primary key, exclusion (or the parser's name for another)."""
    contype = _constraint(_one(ddl)).contype
    return _KINDS.get(contype, str(contype))


def index_is_unique(ddl: str) -> bool:
    return bool(_one(ddl).unique)


def rename_column_in_index(ddl: str, column: str, new: str, name: str,
                           concurrently: bool = True) -> str:
    """The index `ddl` defines, on column `new` instead of `column`, named `name`."""
    stmt = _one(ddl)
    _rename_refs(stmt, column, new)
    stmt.idxname = name
    stmt.concurrent = concurrently
    stmt.if_not_exists = True
    return _text(stmt)


def rename_column_in_check(ddl: str, column: str, new: str, name: str) -> str:
    """The CHECK constraint `ddl` adds, over `new` instead of `column`, named `name`, NOT VALID."""
    stmt = _one(ddl)
    constraint = _constraint(stmt)
    _rename_refs(constraint, column, new)
    constraint.conname = name
    constraint.skip_validation = True
    constraint.initially_valid = False
    return _text(stmt)


def check_condition(ddl: str, column: str, new: str) -> str:
    """The condition of the CHECK constraint `ddl` adds, over `new` instead of `column`."""
    constraint = _constraint(_one(ddl))
    _rename_refs(constraint, column, new)
    return _text(constraint.raw_expr)


def _range_var(relation: tuple[str, str], alias: str | None, original: Any = None) -> ast.RangeVar:
    schema, name = relation
    return ast.RangeVar(
        schemaname=schema, relname=name, inh=True, relpersistence="p",
        alias=(original.alias if original is not None and original.alias is not None
               else ast.Alias(aliasname=alias) if alias else None))


def on_relation(ddl: str, relation: tuple[str, str]) -> str:
    """The index or ALTER TABLE `ddl`, on `relation` (schema, name) instead, without a name of
    its own for an index (PostgreSQL picks one)."""
    stmt = _one(ddl)
    stmt.relation = _range_var(relation, None)
    if isinstance(stmt, ast.IndexStmt):
        stmt.idxname = None
        stmt.concurrent = False
        stmt.if_not_exists = False
    return _text(stmt)


def view_query(create_sql: str, relations: dict[tuple[str, str], tuple[str, str]]) -> str:
    """The query of a CREATE [MATERIALIZED] VIEW statement (names qualified: read under an empty
    search_path), reading relations[(schema, name)] wherever it read (schema, name); each keeps
    its name as an alias, so `prices.amount` still resolves."""
    stmt = _one(create_sql)
    query = stmt.query
    for node in walk(query):
        if isinstance(node, (ast.RangeSubselect, ast.SelectStmt, ast.JoinExpr, ast.FromExpr)):
            for slot in ("fromClause", "larg", "rarg"):
                _replace_in(node, slot, relations)
    return _text(query)


def _replace_in(node: Any, slot: str, relations: dict[tuple[str, str], tuple[str, str]]) -> None:
    value = getattr(node, slot, None)
    if isinstance(value, ast.RangeVar):
        target = relations.get((value.schemaname, value.relname))
        if target is not None:
            setattr(node, slot, _range_var(target, value.relname, value))
    elif isinstance(value, (list, tuple)):
        items = list(value)
        changed = False
        for i, item in enumerate(items):
            if isinstance(item, ast.RangeVar):
                target = relations.get((item.schemaname, item.relname))
                if target is not None:
                    items[i] = _range_var(target, item.relname, item)
                    changed = True
        if changed:
            setattr(node, slot, tuple(items))
