"""alter_column: change a column's type with zero downtime (expand/contract, pgroll style).

    - alter_column:
        table: products
        column: price
        type: numeric(10,2)                  # the new type
        up: "replace(price, ',', '.')::numeric(10,2)"   # old -> new, SQL over the row
        down: "price::text"                  # new -> old; here `price` is the new-type value
        default: "0"                         # the default in the new type; needed if it has one
        unique: true                         # optional: a unique index on the new column
        shadow: price_new                    # optional: the new column's name until the swap

start records the column's definition (saved_columns.py), adds a shadow column of the new type
and one BEFORE INSERT OR UPDATE trigger keeping old and new in step for live writes: a client
writing the old column gets the new one computed by `up`; a client writing only the shadow column
(and not making it what `up` gives) gets the old one computed by `down`.  One function decides
the direction once per row, so a value one direction computed is never taken for a client write
by the other (no ping-pong between two triggers), and the trigger never writes with UPDATE, so
it cannot recurse.  Its WHEN clause skips the tool's own bulk writes (db.tool_writes.TOOL_WRITE_SETTING).
backfill fills the shadow column in key-range batches.  complete: NOT NULL on the shadow column
(when the column had it) through CHECK NOT VALID + VALIDATE + SET NOT NULL, each its own short
step, then one short transaction under lock_timeout that drops the trigger and the old column,
renames the shadow column to the column's name and gives it the default and the comment.
rollback drops trigger, function and shadow column.  uncomplete re-adds the old
column (type, collation), fills it from the pre-migration backup (rows changed since then, or
inserted, get `down`), and swaps back in one short transaction, re-creating the start trigger.

Views reading the column (directly or through other views, materialized ones too) are carried
over: the swap's transaction saves, drops and re-creates them over the new column, and its undo
re-creates them as they were (common/dependent_views.py). The column's plain indexes and CHECK
constraints are rebuilt on the shadow column and take their names at the swap
(common/shadow_indexes.py). validate refuses, naming it, a view, index or check that would not
work over the new type (spec/rebuild_check.py).

Column order: before cutover nothing moves (rollback drops the shadow column, the last one).
After cutover the swapped-in column is the table's last, and so is the original after a down:
plan says so (column_order_note).

Refused: key columns, serial columns, (at validate) unique indexes and unique, exclusion and
foreign key constraints on the column, and (when start runs, before any change) identity or
generated columns, which DROP COLUMN would silently take with it.

With `unique: true`, the validation step first checks that no two rows share a new value, naming
each colliding value and the keys of its rows, and complete builds a unique index
(`<table>_<column>_key`) on the shadow column CONCURRENTLY after NOT NULL and before the swap, so
the column swapped in is already unique (common/unique_values.py); uncomplete drops it. This is the
four-phase column swap: add the new column (start), backfill it, NOT NULL + unique index, swap.
"""

from __future__ import annotations

from dataclasses import replace

from ..actions import Action
from ..errors import SchemaValidationError
from ..identifiers import TableName, literal, quote, short_name
from ..db import skip_writes_of
from ..schema_model import SchemaModel
from ..spec.sql_text import column_names
from ..spec.types import ColumnDefault, Flag, Identifier, SpecModel, SqlExpression, SqlType, TableRef
from .add_column import not_null_actions
from .base import (
    BackfillTask,
    Expression,
    OpContext,
    Operation,
    ParityCheck,
    column_exists_sql,
    first_keys_sql,
)
from .common import dependent_views as views, shadow_indexes as rebuilt
from .common.catalog_sql import all_of, negate
from .common.column_rules import Remedies, refuse_unsafe_column
from ..state.saved_columns import (
    Dependent,
    SavedColumn,
    forget_action,
    is_dropped_sql,
    mark_dropped_sql,
    save_actions,
)
from .common.restore import QUIET
from .common.fill import fill_column
from .common.triggers import drop_row_trigger, function_sql
from .common.unique_values import build_unique_index, drop_unique_index, duplicates_check
from .common.user_triggers import UserTriggers, enable_always


REMEDIES = Remedies(
    views="its type cannot change under them: drop the views first, in this migration, with a "
          "raw_sql that says so (drops: [the views]), and re-create them with a raw_sql at step: "
          "complete",
    key_column=", which the backfill and the undo address rows by; alter_column cannot change a "
               "key column",
    sequence="; alter_column cannot carry a sequence over to the new column",
)


class AlterColumnSpec(SpecModel):
    """Change a column's type with zero downtime: a shadow column kept in step until cutover."""

    table: TableRef
    column: Identifier
    type: SqlType
    """The new type."""
    up: SqlExpression
    """Old value -> new, as SQL over the row: replace(price, ',', '.')::numeric(10,2)."""
    down: SqlExpression
    """New value -> old, as SQL where the column's name stands for the new value: price::text."""
    default: ColumnDefault | None = None
    """The default in the new type (SQL); needed when the column has one."""
    user_triggers: UserTriggers = "skip"
    """Whether the table's user triggers fire on the batches filling the new column: skip (the
    default: batches run with session_replication_role = replica) or fire."""
    unique: Flag = False
    """true: no two rows may share a new value (checked at validation, naming the keys); a unique
    index on the new column is built concurrently at cutover, before the swap."""
    shadow: Identifier | None = None
    """The new column's name until the swap (default mdg_new__<column>)."""


class AlterColumn(Operation, kind="alter_column", spec=AlterColumnSpec):
    def read(self, spec: AlterColumnSpec) -> None:
        self.table: TableName = spec.table
        self.column: str = spec.column
        self.type_sql: str = spec.type
        self.up: str = spec.up
        self.down: str = spec.down
        self.default: str | None = spec.default
        self.user_triggers: str = spec.user_triggers
        self.unique: bool = spec.unique
        self._shadow: str | None = spec.shadow

    def tables(self) -> set[TableName]:
        return {self.table}

    def expressions(self) -> list[Expression]:
        found = [
            Expression("up", self.up, self.table, self.type_sql),
            # the column's name stands for the new value: read once the column has its new type
            Expression("down", self.down, self.table, None, after_apply=True),
        ]
        if self.default is not None:
            found.append(Expression("default", self.default, None, self.type_sql))
        return found

    # -- names -----------------------------------------------------------------------------------
    @property
    def shadow(self) -> str:
        return self._shadow or short_name("mdg_new", self.column)

    @property
    def unique_index(self) -> str:
        return short_name(f"{self.table.name}_{self.column}_key")

    @property
    def old_copy(self) -> str:
        """The original column, re-added by uncomplete before it swaps back."""
        return short_name("mdg_old", self.column)

    @property
    def _sync_trigger(self) -> str:
        return short_name("mdg", self.table.schema, self.table.name, self.column, "alter")

    @property
    def _restore_trigger(self) -> str:
        return short_name("mdg", self.table.schema, self.table.name, self.column, "unalter")

    def _check(self, which: str) -> str:
        return short_name("mdg", self.table.name, self.column, which, "not_null")

    def _alter(self, sql: str) -> str:
        return f"ALTER TABLE {self.table.sql} {sql}"

    # -- validate ----------------------------------------------------------------------------------
    def validate(self, model: SchemaModel) -> None:
        table, column = self.existing_column(model, self.table, self.column)
        refuse_unsafe_column(self.where, self.table, table, column, REMEDIES, views_carried=True)
        if column.default_sql is not None and self.default is None:
            raise SchemaValidationError(
                self.where,
                f"column {self.column!r} of {self.table} has default {column.default_sql}; give "
                "`default:` for the new type (SQL), so the new column keeps one",
            )
        if self.shadow in table.columns:
            raise SchemaValidationError(
                self.where, f"table {self.table} already has a column {self.shadow!r}, the name "
                "alter_column needs for the new column; rename it first")
        if self.unique and (self.table.schema, self.unique_index) in model.relations:
            raise SchemaValidationError(
                self.where, f"schema {self.table.schema} already has a relation named "
                f"{self.unique_index!r}, the name of the unique index unique: true builds")
        # for `plan` before start has saved the definition (complete reads the saved one)
        self._not_null_hint = not column.nullable

    def carried_column(self) -> tuple[TableName, str]:
        return self.table, self.column

    def _dependents(self, ctx: OpContext) -> tuple[Dependent, ...]:
        """The column's indexes and constraints: as start recorded them, else as they are now."""
        saved = ctx.saved_columns.get((self.table, self.column))
        if saved is not None:
            return saved.dependents
        return ctx.column_dependents.get((self.table, self.column), ())

    def apply(self, model: SchemaModel) -> None:
        column = model.tables[self.table].columns[self.column]
        column.type_sql = self.type_sql
        column.default_sql = self.default
        if self.unique:
            model.tables[self.table].indexes.add(self.unique_index)
            model.relations.add((self.table.schema, self.unique_index))

    def expanded_view(self, table: TableName, columns: dict[str, str]) -> None:
        if table == self.table:
            columns.pop(self.shadow, None)
            if self.column in columns:  # the new type, in the column's place
                columns[self.column] = self.shadow

    def old_shape_tables(self) -> set[TableName]:
        return {self.table}

    # -- start / rollback ---------------------------------------------------------------------------
    def start(self, ctx: OpContext) -> list[Action]:
        return [
            self._refuse_what_drop_would_lose(),
            *save_actions(ctx.migration, self.table, self.column),
            Action(
                f"add shadow column {self.shadow} {self.type_sql} to {self.table}",
                self._alter(f"ADD COLUMN IF NOT EXISTS {quote(self.shadow)} {self.type_sql}"),
            ),
            *self._sync_trigger_actions(ctx),
            *rebuilt.build_index_actions(self.table, self.column, self.shadow, rebuilt.NEW,
                                         self._dependents(ctx)),
        ]

    def _refuse_what_drop_would_lose(self) -> Action:
        return rebuilt.refuse_what_drop_would_lose(
            self.table, self.column, only_if=negate(column_exists_sql(self.table, self.shadow)))

    def _declares(self, ctx: OpContext, exclude: set[str]) -> str:
        """The columns `up` and `down` read as variables of their names (pgroll's way), so they
        can say `price` rather than `NEW.price`. Only those: a column another operation of the
        migration renames at cutover would otherwise break every write between its rename and
        this operation's swap."""
        read = column_names(self.up) | column_names(self.down) | {self.column}
        return "".join(
            f"  {quote(c)} {self.table.sql}.{quote(c)}%TYPE := NEW.{quote(c)};\n"
            for c in ctx.columns.get(self.table, []) if c not in exclude and c in read
        )

    def _sync_function(self, ctx: OpContext) -> str:
        col, new = quote(self.column), quote(self.shadow)
        declares = self._declares(ctx, {self.shadow, self.old_copy})
        return f"""CREATE OR REPLACE FUNCTION {function_sql(self._sync_trigger)}() RETURNS trigger
LANGUAGE plpgsql AS $migration_dags$
DECLARE
{declares}  mdg__new_written boolean;
BEGIN
  IF TG_OP = 'INSERT' THEN  -- only a client that knows the new column sets it
    mdg__new_written := NEW.{new} IS NOT NULL;
  ELSE
    mdg__new_written := NEW.{new} IS DISTINCT FROM OLD.{new} AND NEW.{col} IS NOT DISTINCT FROM OLD.{col};
  END IF;
  IF mdg__new_written AND NEW.{new} IS DISTINCT FROM ({self.up}) THEN
    -- a client wrote the new column only: the old one follows (down sees the new value)
    DECLARE
      {col} {self.type_sql} := NEW.{new};
    BEGIN
      NEW.{col} := ({self.down});
    END;
  ELSE
    NEW.{new} := ({self.up});
  END IF;
  RETURN NEW;
END
$migration_dags$"""

    def _trigger_sql(self, trigger: str) -> str:
        return (
            f"CREATE OR REPLACE TRIGGER {quote(trigger)} BEFORE INSERT OR UPDATE ON "
            f"{self.table.sql} FOR EACH ROW WHEN ({skip_writes_of(self._sync_trigger)}) "
            f"EXECUTE FUNCTION {function_sql(trigger)}();\n"
            f"{enable_always(self.table, trigger)}"  # fires on replica-mode backfill batches too
        )

    def _sync_trigger_actions(self, ctx: OpContext) -> list[Action]:
        return [
            Action(f"trigger function: keep {self.column} and {self.shadow} in step",
                   self._sync_function(ctx), takes_lock=False),
            Action(f"trigger on {self.table}: keep {self.column} and {self.shadow} in step",
                   self._trigger_sql(self._sync_trigger)),
        ]

    def rollback(self, ctx: OpContext) -> list[Action]:
        return [
            *drop_row_trigger(self.table, self._sync_trigger),
            Action(f"drop shadow column {self.shadow} from {self.table}",
                   self._alter(f"DROP COLUMN IF EXISTS {quote(self.shadow)}"),
                   only_if=column_exists_sql(self.table, self.shadow)),
            forget_action(ctx.migration, self.table, self.column),
        ]

    # -- backfill / checks ------------------------------------------------------------------------
    def _pending(self) -> str:
        return f"{quote(self.shadow)} IS DISTINCT FROM ({self.up})"

    def backfill(self, ctx: OpContext) -> BackfillTask | None:
        return fill_column(
            f"fill {self.table}.{self.shadow} ({self.type_sql}) from {self.column} by up",
            self.table, self.shadow, self.up, self._sync_trigger, self.user_triggers)

    def checks(self, ctx: OpContext) -> list[ParityCheck]:
        key = ctx.key_of(self.table)
        sample = ", ".join(quote(k) for k in key) if key else "ctid"
        t = self.table.sql
        checks = [ParityCheck(
            f"{self.table.name}.{self.column}.new_type_equals_up",
            f"every {self.shadow} equals up({self.column})",
            f"SELECT count(*) FROM {t} WHERE {self._pending()}",
            first_keys_sql(sample, f"FROM {t}", self._pending(), sample),
        )]
        checks += rebuilt.check_parity(self.table, self.column, self.shadow,
                                       self._dependents(ctx), sample)
        if self.unique:
            checks.append(duplicates_check(
                self.table, self.shadow, key, f"{self.table.name}.{self.column}.unique",
                f"no two rows of {self.table} share a {self.shadow} (the unique index cutover "
                "builds before the swap)"))
        return checks

    # -- complete / uncomplete ----------------------------------------------------------------------
    def complete(self, ctx: OpContext) -> list[Action]:
        saved = ctx.saved_columns.get((self.table, self.column))
        before_swap: list[Action] = []
        if saved.not_null if saved is not None else getattr(self, "_not_null_hint", False):
            before_swap += not_null_actions(self.table, self.shadow, self._check("new"))
        shadow_there = column_exists_sql(self.table, self.shadow)
        dependents = self._dependents(ctx)
        before_swap += rebuilt.add_check_actions(self.table, self.column, self.shadow, rebuilt.NEW,
                                                 dependents, shadow_there)
        before_swap = [replace(a, only_if=all_of(shadow_there, a.only_if) if a.only_if
                               else shadow_there) for a in before_swap]
        if self.unique:
            before_swap += build_unique_index(self.table, self.unique_index, self.shadow, shadow_there)
        # The default goes on with the swap: on the shadow column before it, an old client's
        # insert would carry it and look like a new client's write.
        default = ""
        if self.default is not None:
            default = self._alter(f"ALTER COLUMN {quote(self.column)} SET DEFAULT {self.default}") + ";\n"
        comment = ""
        if saved is not None and saved.comment is not None:
            comment = (f"COMMENT ON COLUMN {self.table.sql}.{quote(self.column)} IS "
                       f"{literal(saved.comment)};\n")
        swap = Action(
            f"swap: drop {self.table}.{self.column}, rename {self.shadow} to {self.column} "
            "(one short transaction)",
            f"DROP TRIGGER IF EXISTS {quote(self._sync_trigger)} ON {self.table.sql};\n"
            f"{rebuilt.lost_on_drop_guard_sql(self.table, self.column, dependents)}"
            f"{views.before_swap_sql(ctx.migration, self.table, self.column)};\n"
            f"{self._alter(f'DROP COLUMN {quote(self.column)}')};\n"
            f"{self._alter(f'RENAME COLUMN {quote(self.shadow)} TO {quote(self.column)}')};\n"
            f"{rebuilt.take_names_sql(self.table, rebuilt.NEW, dependents)}"
            f"{default}{comment}"
            f"{views.after_swap_sql(ctx.migration, self.table, self.column)};\n"
            f"{mark_dropped_sql(ctx.migration, self.table, self.column, True)}",
            only_if=shadow_there,
        )
        return [*before_swap, swap, *drop_row_trigger(self.table, self._sync_trigger)[1:]]

    def uncomplete(self, ctx: OpContext) -> list[Action]:
        saved = ctx.saved_columns.get((self.table, self.column))
        if saved is None:
            return []
        unique = [drop_unique_index(self.table, self.unique_index)] if self.unique else []
        return [*self._unswap(ctx, saved), *self._undo_before_swap(saved.dependents), *unique]

    def _undo_before_swap(self, dependents: tuple[Dependent, ...]) -> list[Action]:
        """What complete did to the shadow column before the swap, when it failed there (after
        a swap back, the shadow column is already so)."""
        checks = rebuilt.drop_checks_sql(self.table, rebuilt.NEW, dependents)
        return [Action(
            f"shadow column {self.shadow} back to nullable, no default"
            + (", without the checks rebuilt on it" if checks else ""),
            self._alter(f"DROP CONSTRAINT IF EXISTS {quote(self._check('new'))}, "
                        f"ALTER COLUMN {quote(self.shadow)} DROP NOT NULL, "
                        f"ALTER COLUMN {quote(self.shadow)} DROP DEFAULT")
            + (f";\n{checks}" if checks else ""),
            only_if=column_exists_sql(self.table, self.shadow),
        )]

    def _unswap(self, ctx: OpContext, saved: SavedColumn) -> list[Action]:
        dropped = is_dropped_sql(ctx.migration, self.table, self.column)
        col, old = quote(self.column), quote(self.old_copy)
        definition = saved.type_sql + (f" COLLATE {saved.collation_sql}" if saved.collation_sql else "")
        steps: list[Action] = [
            Action(f"re-add the original {self.column} as {self.old_copy} {definition}",
                   self._alter(f"ADD COLUMN IF NOT EXISTS {old} {definition}")),
            Action(f"trigger function: keep {self.old_copy} = down({self.column})",
                   self._restore_function(ctx, saved), takes_lock=False),
            Action(f"trigger on {self.table}: keep {self.old_copy} = down({self.column})",
                   self._trigger_sql(self._restore_trigger)),
            *self._restore_values(ctx),
        ]
        if saved.not_null:
            steps += not_null_actions(self.table, self.old_copy, self._check("old"))
        old_there = column_exists_sql(self.table, self.old_copy)
        steps += rebuilt.build_index_actions(self.table, self.column, self.old_copy, rebuilt.OLD,
                                             saved.dependents)
        steps += rebuilt.add_check_actions(self.table, self.column, self.old_copy, rebuilt.OLD,
                                           saved.dependents, old_there)
        default = (f", ALTER COLUMN {col} SET DEFAULT {saved.default_sql}"
                   if saved.default_sql is not None else "")
        comment = (f"COMMENT ON COLUMN {self.table.sql}.{col} IS {literal(saved.comment)};\n"
                   if saved.comment is not None else "")
        steps.append(Action(
            f"swap back: {self.column} to {self.shadow}, {self.old_copy} to {self.column} "
            "(one short transaction)",
            f"DROP TRIGGER IF EXISTS {quote(self._restore_trigger)} ON {self.table.sql};\n"
            f"{views.before_unswap_sql(ctx.migration, self.table, self.column)};\n"
            f"{self._alter(f'RENAME COLUMN {col} TO {quote(self.shadow)}')};\n"
            f"{self._alter(f'RENAME COLUMN {old} TO {col}')};\n"
            f"{rebuilt.exchange_names_sql(self.table, saved.dependents)}"
            + self._alter(f"ALTER COLUMN {quote(self.shadow)} DROP NOT NULL, "
                          f"ALTER COLUMN {quote(self.shadow)} DROP DEFAULT{default}") + ";\n"
            f"{comment}"
            f"{views.after_unswap_sql(ctx.migration, self.table, self.column)};\n"
            f"{self._sync_function(ctx)};\n{self._trigger_sql(self._sync_trigger)};\n"
            f"{mark_dropped_sql(ctx.migration, self.table, self.column, False)}",
            only_if=old_there,
        ))
        steps = [replace(a, only_if=all_of(dropped, a.only_if) if a.only_if else dropped)
                 for a in steps]
        return steps + drop_row_trigger(self.table, self._restore_trigger)[1:]

    def _restore_function(self, ctx: OpContext, saved: SavedColumn) -> str:
        declares = self._declares(ctx, {self.shadow, self.old_copy})
        return f"""CREATE OR REPLACE FUNCTION {function_sql(self._restore_trigger)}() RETURNS trigger
LANGUAGE plpgsql AS $migration_dags$
DECLARE
{declares}BEGIN
  NEW.{quote(self.old_copy)} := ({self.down});
  RETURN NEW;
END
$migration_dags$"""

    def _restore_values(self, ctx: OpContext) -> list[Action]:
        """Fill the re-added column: the backed-up value where the row's value is still what the
        backup's gives by `up` (exact, even when down(up(x)) is not x), else down(value now)."""
        t, col, old = self.table.sql, quote(self.column), quote(self.old_copy)
        down = f"({self.down})"
        backup = ctx.backups.get(self.table)
        keys = ctx.key_of(self.table)
        if backup is None or not keys:
            return [Action(
                f"fill {self.old_copy} by down({self.column})",
                f"{QUIET}UPDATE {t} SET {old} = {down} WHERE {old} IS DISTINCT FROM {down}")]
        kcols = ", ".join(f"bk.{quote(k)} AS {quote(f'mdg__k{i}')}" for i, k in enumerate(keys))
        match = " AND ".join(f"s.{quote(k)} = b.{quote(f'mdg__k{i}')}" for i, k in enumerate(keys))
        in_backup = " AND ".join(f"s.{quote(k)} = bk.{quote(k)}" for k in keys)
        value = f"CASE WHEN b.mdg__up IS NOT DISTINCT FROM s.{col} THEN b.mdg__orig ELSE {down} END"
        return [
            Action(
                f"restore {self.old_copy} from the backup of {self.table} (undo of alter_column)",
                f"{QUIET}UPDATE {t} AS s SET {old} = {value}\n"
                f"FROM (SELECT {kcols}, bk.{col} AS mdg__orig, ({self.up}) AS mdg__up "
                f"FROM {backup.sql} AS bk) AS b\n"
                f"WHERE {match} AND s.{old} IS DISTINCT FROM {value}",
            ),
            Action(
                f"fill {self.old_copy} by down({self.column}) for rows the backup does not have",
                f"{QUIET}UPDATE {t} AS s SET {old} = {down}\n"
                f"WHERE s.{old} IS DISTINCT FROM {down} AND NOT EXISTS "
                f"(SELECT 1 FROM {backup.sql} AS bk WHERE {in_backup})",
            ),
        ]

    def summary(self) -> str:
        return f"alter_column {self.table}.{self.column} -> {self.type_sql}"

    def column_order_note(self) -> str | None:
        return (f"{self.table}.{self.column}: cutover swaps in a new column, which becomes the last "
                f"column of {self.table}, and a down after cutover swaps the old type back in as "
                "the last column too (unless it already was): the table's column order then "
                "differs from before, and the proof reports that difference")
