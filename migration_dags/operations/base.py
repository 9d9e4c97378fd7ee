"""The operation contract every operation type implements (pgroll's verbs, our five steps).

An operation is data read from a migration file. It never runs SQL: each verb returns actions.

    validate(model)   against the schema as earlier operations leave it; raises, changes nothing
    apply(model)      updates the model as start+complete would
    start(ctx)        expand: new columns, triggers, NOT VALID constraints, concurrent indexes
    rollback(ctx)     undo of start; idempotent (IF EXISTS), safe on a half-done start
    backfill(ctx)     a BackfillTask over key ranges, or None
    unbackfill(ctx)   undo of the backfill's data change (restores from the backup)
    complete(ctx)     contract: the switch that makes the new shape the only one
    uncomplete(ctx)   undo of complete (restores dropped data from the backup)
    checks(ctx)       parity checks for the validation step: SQL counting offending rows

Beside the verbs, `expressions()` lists the SQL expressions the file gave the operation, with the
row each reads and the type it must have, so validate can check them against the live catalog
(spec/catalog_check.py) before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from ..actions import Action
from ..errors import ColumnDoesNotExistError, TableDoesNotExistError
from ..identifiers import TableName
from ..schema_model import ColumnModel, SchemaModel, TableModel

if TYPE_CHECKING:
    from .common.user_triggers import ForeignKey
    from ..spec.types import SpecModel
    from ..state.saved_columns import Dependent, SavedColumn
    from .common.partitions import Partition

RANGE_PLACEHOLDER = "/*migration_dags:key_range*/TRUE"


@dataclass(frozen=True)
class OpContext:
    """What the verbs need to know beyond their own fields, filled by the engine."""

    migration: str
    # source table -> its backup copy (only for tables that existed before the migration)
    backups: dict[TableName, TableName] = field(default_factory=dict)
    # table -> key columns used for batches and for restoring rows from a backup
    keys: dict[TableName, list[str]] = field(default_factory=dict)
    # table -> its column names as the schema model holds them (for triggers over the row)
    columns: dict[TableName, list[str]] = field(default_factory=dict)
    # backed-up table -> the columns its backup holds, i.e. the columns it had before the
    # migration: a restore from the backup writes only these (new columns are the rollback's job)
    backup_columns: dict[TableName, list[str]] = field(default_factory=dict)
    # (table, column) -> definition drop_column recorded before dropping it (saved_columns.py),
    # so uncomplete can re-add the column exactly once it is gone from the catalog
    saved_columns: dict[tuple[TableName, str], "SavedColumn"] = field(default_factory=dict)
    # table -> the foreign keys it has or is referenced by (for the checks that stand in for the
    # FK triggers batches skip in replica mode); read from the live catalog
    foreign_keys: dict[TableName, list["ForeignKey"]] = field(default_factory=dict)
    # (table, column) -> the indexes and constraints the column has now, for each column an
    # operation carries over (carried_column): what alter_column rebuilds on its new column
    column_dependents: dict[tuple[TableName, str], tuple["Dependent", ...]] = field(
        default_factory=dict)
    # partitioned table -> its partitions at every level, parents first (common/partitions.py);
    # a table not in it is not partitioned, or the context is offline
    partitions: dict[TableName, list["Partition"]] = field(default_factory=dict)

    def key_of(self, table: TableName) -> list[str]:
        return self.keys.get(table, [])


@dataclass(frozen=True)
class Expression:
    """An expression of the migration file, as validate checks it against the live catalog.

    field      where it is written, below the operation: "column.default", "set.email"
    sql        the expression (or, with is_query, a SELECT where `{rows}` stands for table's rows)
    table      the row it reads, as the schema model holds it when checked; None: no row (defaults)
    type_sql   the type its value must convert to; "boolean" for a condition; None: any
    to_column  instead of type_sql: the type of this column of `table`
    after_apply  checked against the model after the operation applies (alter_column's down,
               where the column already has its new type)
    """

    field: str
    sql: str
    table: TableName | None = None
    type_sql: str | None = None
    to_column: str | None = None
    after_apply: bool = False
    is_query: bool = False


@dataclass(frozen=True)
class BackfillTask:
    """A statement run once per key-range batch of `range_table`.

    `statement` contains RANGE_PLACEHOLDER where the batch's key predicate goes; it must be
    idempotent (an UPDATE that only touches rows still to change, an INSERT ... ON CONFLICT DO
    NOTHING), so a batch re-run after a crash changes nothing twice.  With
    `rewrites_null_results` a re-run writes again, with the same NULL, the rows whose new value
    is NULL (common/fill.py: the price of computing the value once per row): no value changes.
    """

    description: str
    range_table: TableName
    statement: str
    # the operation's own sync trigger, which computes the same value the statement writes: its
    # batches may skip that trigger (halves the cost per row), and only that one
    own_trigger: str | None = None
    # the table the statement writes (None: range_table), and whether its users' triggers fire on
    # the batches: "skip" (the default: batches run with session_replication_role = replica, see
    # operations/common/user_triggers.py) or "fire"
    writes: TableName | None = None
    user_triggers: str = "skip"
    # rows that come from another database (cross_database/copier.py: a RowCopy): the planner
    # cuts the source's keys into partitions and the runner hands each partition to it;
    # `statement` is then only what plan and lint show
    copy: Any = None
    rewrites_null_results: bool = False

    @property
    def written_table(self) -> TableName:
        return self.writes or self.range_table

    def for_range(self, range_sql: str) -> str:
        return self.statement.replace(RANGE_PLACEHOLDER, f"({range_sql})")


@dataclass(frozen=True)
class ParityCheck:
    """Blocking check: `count_sql` returns the number of offending rows (0 passes)."""

    name: str
    description: str
    count_sql: str
    sample_sql: str | None = None  # up to 20 offending keys, as text
    # when it fails: a query giving one line (or NULL) that says why, for the failure message
    explain_sql: str | None = None
    # a check SQL alone cannot make (it reads another database too): called by the validation
    # step instead of count_sql with (conn, the migration's backfill tasks); returns (offending
    # count, samples). count_sql is then what plan shows
    evaluate: Callable[[Any, list["BackfillTask"]], tuple[int, list[str]]] | None = None


SAMPLES_PER_CHECK = 20


def first_keys_sql(shown: str, source: str, where: str, order: str) -> str:
    """The first offending rows in key order (`order`), shown as text: samples that read the
    same from run to run, where heap order would change with every update."""
    # named apart: ORDER BY "id" would otherwise sort by the output column, the text "id"
    return (f"SELECT ({shown})::text AS mdg__sample {source} WHERE {where} ORDER BY {order} "
            f"LIMIT {SAMPLES_PER_CHECK}")


# kind -> operation type; each type adds itself when its module is imported (operations/__init__
# imports them all)
OPERATION_TYPES: dict[str, type["Operation"]] = {}


class Operation:
    """One operation of a migration file. A type declares its key and its body's model:

        class AddColumn(Operation, kind="add_column", spec=AddColumnSpec): ...
    """

    kind: ClassVar[str] = ""
    spec: ClassVar[type["SpecModel"]]

    def __init_subclass__(cls, kind: str = "", spec: type["SpecModel"] | None = None, **rest: Any):
        super().__init_subclass__(**rest)
        if not kind:
            return
        if spec is None:
            raise TypeError(f"operation type {cls.__name__} needs spec=<the model of its body>")
        if kind in OPERATION_TYPES:
            raise TypeError(f"operation kind {kind!r} is taken by {OPERATION_TYPES[kind].__name__}")
        cls.kind, cls.spec = kind, spec
        OPERATION_TYPES[kind] = cls

    def __init__(self, spec: "SpecModel", index: int, file: str):
        """From the validated body of operations[index] in `file`."""
        self.index = index
        self.where = f"{file}: operations[{index}].{self.kind}"
        self.file = file
        self.read(spec)

    # -- reading ---------------------------------------------------------------------------
    def read(self, spec: Any) -> None:
        """Take the fields the verbs use from the validated body (an instance of `self.spec`)."""
        raise NotImplementedError

    def tables(self) -> set[TableName]:
        """Tables this operation changes (backed up before the migration when they exist)."""
        raise NotImplementedError

    def created_tables(self) -> set[TableName]:
        return set()

    def read_tables(self) -> set[TableName]:
        """Tables this operation only reads or references (validated, never backed up)."""
        return set()

    # -- helpers for validate ----------------------------------------------------------------
    def existing_table(self, model: SchemaModel, name: TableName) -> TableModel:
        """The table as the model holds it, or TableDoesNotExistError naming this operation."""
        table = model.table(name)
        if table is None:
            raise TableDoesNotExistError(self.where, str(name))
        return table

    def existing_column(
        self, model: SchemaModel, name: TableName, column: str
    ) -> tuple[TableModel, ColumnModel]:
        """The table and its column, or the error naming which one is missing."""
        table = self.existing_table(model, name)
        if column not in table.columns:
            raise ColumnDoesNotExistError(self.where, str(name), column)
        return table, table.columns[column]

    # -- verbs -------------------------------------------------------------------------------
    def validate(self, model: SchemaModel) -> None:
        raise NotImplementedError

    def apply(self, model: SchemaModel) -> None:
        raise NotImplementedError

    def start(self, ctx: OpContext) -> list[Action]:
        return []

    def rollback(self, ctx: OpContext) -> list[Action]:
        return []

    def backfill(self, ctx: OpContext) -> BackfillTask | None:
        return None

    def unbackfill(self, ctx: OpContext) -> list[Action]:
        return []

    def complete(self, ctx: OpContext) -> list[Action]:
        return []

    def uncomplete(self, ctx: OpContext) -> list[Action]:
        return []

    def checks(self, ctx: OpContext) -> list[ParityCheck]:
        return []

    def summary(self) -> str:
        return self.kind

    def expressions(self) -> list[Expression]:
        """The SQL expressions this operation's file entry holds (see Expression)."""
        return []

    def carried_column(self) -> tuple[TableName, str] | None:
        """The column whose views, indexes and CHECK constraints this operation re-creates over
        a new column of that name at cutover (alter_column): validate checks they work over its
        new type (spec/rebuild_check.py), plan lists the views (common/dependent_views.py)."""
        return None

    def expanded_view(self, table: TableName, columns: dict[str, str]) -> None:
        """The new shape of `table` while the migration is expanded (expand/version_schema.py):
        `columns` maps each column of the version schema's view, in order, to the table column
        it reads. An operation that changes the table's shape changes the map in place."""

    def old_shape_tables(self) -> set[TableName]:
        """Tables whose writes in the old shape go wrong once this operation is complete (a
        renamed or dropped column, a NOT NULL the old code does not fill): `complete` waits until
        none of those writes is seen for a quiet period (expand/old_shape_writes.py)."""
        return set()

    def expansion_note(self) -> str | None:
        """Said in plan (after validate): what the new shape cannot do while expanded."""
        return None

    def column_order_note(self) -> str | None:
        """Said in plan, before up, when a down after cutover cannot put the table's columns back
        in their order; the proof then accepts that one difference (and reports it)."""
        return None


# -- helpers shared by several operations ----------------------------------------------------
def column_exists_sql(table: TableName, column: str) -> str:
    return (
        "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass("
        f"{table.regclass_literal}) AND attname = {_lit(column)} AND attnum > 0 AND NOT attisdropped)"
    )


def constraint_exists_sql(table: TableName, name: str) -> str:
    return (
        "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass("
        f"{table.regclass_literal}) AND conname = {_lit(name)})"
    )


def _lit(value: str) -> str:
    from ..identifiers import literal

    return literal(value)
