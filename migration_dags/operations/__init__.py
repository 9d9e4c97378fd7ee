"""Operation types by the key a migration file uses for them. One module per type."""

from __future__ import annotations

from .add_column import AddColumn
from .base import Operation
from .raw_sql import RawSql

OPERATION_TYPES: dict[str, type[Operation]] = {
    op.kind: op
    for op in (
        AddColumn,
        RawSql,
    )
}
