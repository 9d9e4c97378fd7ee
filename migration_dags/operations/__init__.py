"""Operation types by the key a migration file uses for them. One module per type."""

from __future__ import annotations

from .add_check import AddCheck
from .add_column import AddColumn
from .add_foreign_key import AddForeignKey
from .alter_column import AlterColumn
from .backfill import Backfill
from .base import Operation
from .create_index import CreateIndex
from .create_table import CreateTable
from .drop_column import DropColumn
from .raw_sql import RawSql
from .rename_column import RenameColumn

OPERATION_TYPES: dict[str, type[Operation]] = {
    op.kind: op
    for op in (
        AddColumn,
        RawSql,
        CreateTable,
        CreateIndex,
        AddForeignKey,
        AddCheck,
        RenameColumn,
        DropColumn,
        Backfill,
        AlterColumn,
    )
}
