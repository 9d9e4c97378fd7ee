"""What the operations' verbs are given: the schema model to validate against, and an OpContext,
read from the live catalog or, for an offline plan, from the migration file alone."""

from __future__ import annotations

import psycopg

from .. import state
from ..backup_tables import hashes_only
from ..fingerprint import column_names
from ..identifiers import TableName
from ..operations.base import OpContext
from ..operations.common.partitions import read_partitions
from ..operations.common.user_triggers import read_foreign_keys, require_role_can_skip
from ..schema_model import SchemaModel, read_schema
from ..spec import Migration
from ..spec.catalog_check import check_expressions
from ..spec.rebuild_check import check_rebuilds
from ..state.saved_columns import read_dependents, read_saved_columns
from .verbs import backfill_tasks

# What an offline plan shows where only the live catalog knows the answer.
OFFLINE_KEY = "<primary key>"
OFFLINE_COLUMN = "<each column of the table>"


def live_model(conn: psycopg.Connection, migration: Migration) -> SchemaModel:
    # plus tables operations only reference (a foreign key's target), so validate can check them
    read_only = {t for op in migration.operations for t in op.read_tables()}
    return read_schema(conn, migration.touched_tables() | read_only)


def validate(conn: psycopg.Connection, migration: Migration) -> SchemaModel:
    """Check every operation against the live schema, in order, and its expressions against the
    live catalog (catalog_check.py, in rolled-back transactions). Changes nothing.

    After a raw_sql the catalog may differ from what later operations will meet (a CREATE TYPE,
    a function), so their expressions are checked at load time only."""
    model = live_model(conn, migration)
    catalog_known = True
    for op in migration.operations:
        op.validate(model)
        if catalog_known:
            check_expressions(conn, op, model, migration.allow_functions, after_apply=False)
        op.apply(model)
        if catalog_known:
            check_expressions(conn, op, model, migration.allow_functions, after_apply=True)
        check_rebuilds(conn, op, model)  # views, indexes, checks over a new type
        catalog_known = catalog_known and op.kind != "raw_sql"
    tasks = backfill_tasks(migration.operations, offline_op_context(migration))
    require_role_can_skip(conn, migration.name, tasks)
    return model


def live_op_context(conn: psycopg.Connection, migration: Migration) -> OpContext:
    live = live_model(conn, migration)
    keys: dict[TableName, list[str]] = {t: m.primary_key for t, m in live.tables.items()}
    columns = {t: list(m.columns) for t, m in live.tables.items()}
    backups: dict[TableName, TableName] = {}
    backup_columns: dict[TableName, list[str]] = {}
    for rec in state.backups(conn, migration.name):
        if hashes_only(conn, rec):  # no rows to restore from: no operation's undo may use it
            continue
        backups[rec.source] = rec.backup
        if not keys.get(rec.source):  # the table is gone, or lost its key: the backup's
            keys[rec.source] = rec.key_columns
        # the columns the table had before the migration: restores write only these
        backup_columns[rec.source] = column_names(conn, rec.backup)
    # column definitions drop_column saved before dropping them, for its undo
    saved = read_saved_columns(conn, migration.name)
    fks = read_foreign_keys(conn, set(live.tables))
    carried = {c: read_dependents(conn, *c) for op in migration.operations
               if (c := op.carried_column()) is not None and c[0] in live.tables}
    partitions = read_partitions(conn, set(live.tables))
    return OpContext(migration.name, backups, keys, columns, backup_columns, saved, fks, carried,
                     partitions)


def offline_op_context(migration: Migration) -> OpContext:
    """For `plan --offline`: every table's key and columns are placeholders the SQL shows as
    such; nothing is backed up yet, no column has been saved."""
    tables = migration.touched_tables()
    return OpContext(
        migration.name,
        keys={t: [OFFLINE_KEY] for t in tables},
        columns={t: [OFFLINE_COLUMN] for t in tables},
    )
