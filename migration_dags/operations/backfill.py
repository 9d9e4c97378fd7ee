"""backfill: a data change over `table`, run in key-range batches by the backfill step.

Two forms; exactly one of `set` and `insert`.

(a) set columns of `table` in place:

    - backfill:
        table: users
        set: {email_verified: "true", email_verified_at: "created_at"}   # column: SQL over the row
        where: "created_at < now() - interval '30 days'"                 # optional

    UPDATE users SET ... WHERE <batch range> AND (where) AND ROW(cols) IS DISTINCT FROM ROW(exprs):
    rows already right are not touched, so a re-run batch changes nothing. That needs expressions
    that give an already-backfilled row its own value again (`lower(email)`, not `price * 2`);
    each row is updated once either way, but the validation step reports such rows. unbackfill
    puts the columns that existed before the migration back from the backup (a column an earlier
    add_column made needs nothing: the schema rollback drops it). The validation step counts rows matching
    `where` whose columns differ from their expressions (so expressions must be deterministic:
    `now()` never compares equal later; and comparable to the column, cast them if not).

    With `keep_in_step: true`, schema_change also adds a BEFORE INSERT OR UPDATE trigger that
    applies the same expressions to every row the application writes (matching `where`), until
    cutover drops it: live writes stay normalised while the batches run and until the new
    release writes the values itself (`email: lower(email)`). Without it, a row the application
    writes after its batch keeps what it wrote, which suits a one-off fix whose later rows are
    the application's own (closing open rentals), and fails validation otherwise.

(b) insert rows derived from `table` into another table:

    - backfill:
        table: orders                      # the rows batches are cut from
        insert:
          into: order_totals               # needs a primary key or unique NOT NULL key
          columns: [order_id, total]
          select: "SELECT o.id, o.quantity * o.unit_price FROM {rows} AS o"

    `{rows}` stands for this batch's rows of `table` (a subquery; give it an alias), so the select
    may join other tables without the batch's key predicate becoming ambiguous. Each batch runs
    INSERT INTO into (columns) <select> ON CONFLICT DO NOTHING: a re-run batch inserts nothing
    twice.

    Two options turn it into a transform that merges:

          upsert: [id]            # ON CONFLICT (id) DO UPDATE SET <the other columns>
          parse_json: [data]      # the select gives text; parsed into jsonb without failing

    `upsert` names `into`'s primary key: a row already there gets the select's values (only when
    they differ, so a re-run batch changes nothing), so re-runs after the source changed, and
    partitions that overlap, merge instead of keeping the first write. `parse_json` names
    columns whose select value is text holding JSON: it is parsed by a helper that returns NULL
    instead of raising (common/json_text.py), the batch skips a row that does not parse and goes
    on, and the validation step counts those rows and names their keys (`…invalid_json`), which
    fails validation. unbackfill deletes the rows of `into` its backup does not have; when the migration
    created `into` (no backup), every row of it, so that a later undo (a raw_sql down deleting the
    rows they reference) runs against an empty table before the schema rollback drops it; with
    `upsert` into a table that existed, the rows it updated also get their backed-up values back.
    The validation step counts select rows missing from `into` (or, with upsert, different
    there). An `into` that existed before grows: set validation.row_count: grows.

User triggers do not fire on the batches (they run with session_replication_role = replica; the
tool's own triggers still fire, and validation checks the foreign keys over the written columns,
whose triggers replica mode skips: operations/common/user_triggers.py). `user_triggers: fire`
makes them fire, for a trigger that must run; then an `updated_at` trigger changes rows that
unbackfill does not restore, and the backup step's down reports it. `plan` lists them.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ValidationInfo, model_validator

from ..actions import Action
from ..errors import (
    ColumnDoesNotExistError,
    NoPrimaryKeyError,
    SchemaValidationError,
)
from ..db import skip_writes_of
from ..identifiers import TableName, literal, quote, short_name
from ..schema_model import SchemaModel
from ..spec.problems import describe, problem
from ..spec.types import (
    Flag,
    Identifier,
    Names,
    OptionalSqlExpression,
    SpecModel,
    Sql,
    SqlExpression,
    TableRef,
    check_query,
)
from .base import (
    RANGE_PLACEHOLDER,
    BackfillTask,
    Expression,
    OpContext,
    Operation,
    ParityCheck,
    first_keys_sql,
)
from ..state.capture import capture_table, untouched
from .common.json_text import create_parser, drop_parser, parser_name
from .common.restore import delete_rows_not_in_backup, restore_columns
from .common.triggers import ROW_ALIAS, drop_row_trigger, row_expression, row_trigger
from .common.user_triggers import UserTriggers, foreign_key_checks

ROWS = "{rows}"


def _some_columns(value: Any) -> Any:
    if not isinstance(value, dict):
        raise problem(f"must be a mapping, got {describe(value)}")
    if not value:
        raise problem("must name at least one column")
    return value


def _batch_select(select: str, info: ValidationInfo) -> str:
    select = select.strip().rstrip(";").strip()
    if select.count(ROWS) != 1:
        raise problem("must use {rows} exactly once, where the batch's rows of `table` go: "
                      "... FROM {rows} AS t ...")
    # parsed as it will run: {rows} is a subquery there
    check_query(select.replace(ROWS, "(SELECT 1)"), info)
    return select


class InsertSpec(SpecModel):
    """Rows derived from `table`, inserted into another table (ON CONFLICT DO NOTHING)."""

    into: TableRef
    """The table rows go into; it needs a primary key or unique NOT NULL key."""
    columns: Names
    """The columns of `into` the select fills, in its order."""
    select: Annotated[Sql, AfterValidator(_batch_select)]
    """SQL selecting the rows; {rows} stands for this batch's rows of `table`:
    SELECT o.id, o.quantity * o.unit_price FROM {rows} AS o"""
    upsert: Names | None = None
    """The primary key of `into`: a row already there is updated to the select's values
    (ON CONFLICT DO UPDATE), so re-runs and overlapping partitions merge."""
    parse_json: Names = []
    """Columns whose select value is text holding JSON, parsed into jsonb; a row that does not
    parse is skipped by its batch and fails validation, named by its key."""

    @model_validator(mode="after")
    def _named_columns(self) -> "InsertSpec":
        for field in ("upsert", "parse_json"):
            for i, column in enumerate(getattr(self, field) or []):
                if column not in self.columns:
                    raise problem(f"{column!r} is not one of columns", at=f"{field}[{i}]")
        if self.upsert and set(self.upsert) == set(self.columns):
            raise problem("names every column: there is nothing left to update", at="upsert")
        return self


class BackfillSpec(SpecModel):
    """A data change over `table` in key-range batches: set columns in place, or insert rows."""

    table: TableRef
    """The table whose rows the batches are cut from."""
    set: Annotated[dict[Identifier, SqlExpression], BeforeValidator(_some_columns)] | None = None
    """column: SQL over the row, e.g. {email_verified: "true"}."""
    where: OptionalSqlExpression | None = None
    """Only rows matching this SQL condition (with set)."""
    insert: InsertSpec | None = None
    user_triggers: UserTriggers = "skip"
    """Whether the table's user triggers fire on the batches: skip (the default: batches run with
    session_replication_role = replica) or fire."""
    keep_in_step: Flag = False
    """With set: a trigger applies the set expressions to every row the application inserts or
    updates (matching where) from schema_change until cutover, so live writes stay in step."""

    @classmethod
    def check_keys(cls, data: dict[str, Any]) -> None:
        if ("set" in data) == ("insert" in data):
            raise problem("give exactly one of set (update rows in place) and insert", at="set")
        if "insert" in data and data.get("keep_in_step"):
            raise problem("goes with set: an insert backfill's rows are the select's",
                          at="keep_in_step")
        if "insert" in data and "where" in data:
            raise problem("belongs in insert.select (filter the {rows} there)", at="where")


class Backfill(Operation, kind="backfill", spec=BackfillSpec):
    def read(self, spec: BackfillSpec) -> None:
        self.table: TableName = spec.table
        self.set: dict[str, str] = dict(spec.set or {})
        self.predicate: str | None = spec.where
        self.into: TableName | None = None
        self.user_triggers: str = spec.user_triggers
        self.keep_in_step: bool = spec.keep_in_step
        if spec.insert is not None:
            self.into = spec.insert.into
            self.insert_columns: list[str] = spec.insert.columns
            self.select: str = spec.insert.select
            self.upsert: list[str] = list(spec.insert.upsert or [])
            self.parse_json: list[str] = list(spec.insert.parse_json)

    # -- tables --------------------------------------------------------------------------------
    def tables(self) -> set[TableName]:
        return {self.into} if self.into is not None else {self.table}

    def read_tables(self) -> set[TableName]:
        return {self.table} if self.into is not None else set()

    def expressions(self) -> list[Expression]:
        if self.into is not None:
            return [Expression("insert.select", self.select, self.table, is_query=True)]
        found = [Expression(f"set.{c}", e, self.table, to_column=c) for c, e in self.set.items()]
        if self.predicate is not None:
            found.append(Expression("where", self.predicate, self.table, "boolean"))
        return found

    # -- validate ------------------------------------------------------------------------------
    def validate(self, model: SchemaModel) -> None:
        source = self._keyed_table(model, self.table)
        if self.into is None:
            for column in self.set:
                if column not in source.columns:
                    raise ColumnDoesNotExistError(self.where, str(self.table), column)
                if column in source.primary_key:
                    raise SchemaValidationError(
                        self.where, f"column {column!r} is part of the key of {self.table}, which "
                        "the batches are cut by; a backfill cannot change it")
            return
        target = self._keyed_table(model, self.into)  # ON CONFLICT DO NOTHING needs a key
        for column in self.insert_columns:
            if column not in target.columns:
                raise ColumnDoesNotExistError(self.where, str(self.into), column)
        if self.upsert and set(self.upsert) != set(target.primary_key):
            raise SchemaValidationError(
                f"{self.where}.insert.upsert", f"must name the primary key of {self.into} "
                f"({', '.join(target.primary_key)}), the key ON CONFLICT merges rows on")
        for column in self.parse_json:
            if not target.columns[column].type_sql.lower().startswith("json"):
                raise SchemaValidationError(
                    f"{self.where}.insert.parse_json", f"column {column!r} of {self.into} is "
                    f"{target.columns[column].type_sql}, not jsonb: parse_json fills jsonb columns")

    def _keyed_table(self, model: SchemaModel, name: TableName):
        table = self.existing_table(model, name)
        if not table.primary_key:
            raise NoPrimaryKeyError(self.where, str(name))
        return table

    def apply(self, model: SchemaModel) -> None:
        pass  # data only

    # -- form (a): set ---------------------------------------------------------------------------
    @property
    def _differs(self) -> str:
        cols = ", ".join(quote(c) for c in self.set)
        exprs = ", ".join(f"({e})" for e in self.set.values())
        return f"ROW({cols}) IS DISTINCT FROM ROW({exprs})"

    @property
    def _pending(self) -> str:
        where = f"({self.predicate}) AND " if self.predicate else ""
        return where + self._differs

    def _rows(self, range_sql: str) -> str:
        return f"(SELECT * FROM {self.table.sql} WHERE {range_sql})"

    def backfill(self, ctx: OpContext) -> BackfillTask | None:
        if self.into is None:
            sets = ", ".join(f"{quote(c)} = ({e})" for c, e in self.set.items())
            return BackfillTask(
                f"set {', '.join(self.set)} of {self.table}",
                self.table,
                f"UPDATE {self.table.sql} SET {sets} WHERE {RANGE_PLACEHOLDER} AND {self._pending}",
                own_trigger=self._trigger if self.keep_in_step else None,
                user_triggers=self.user_triggers,
            )
        how = "upsert" if self.upsert else "insert"
        return BackfillTask(
            f"{how} into {self.into} from {self.table}",
            self.table,
            f"INSERT INTO {self.into.sql} AS target ({', '.join(quote(c) for c in self.insert_columns)})\n"
            f"{self._prepared(RANGE_PLACEHOLDER, ctx)}\n{self._on_conflict()}",
            writes=self.into, user_triggers=self.user_triggers,
        )

    # -- form (b): insert ------------------------------------------------------------------------
    def _parser(self, ctx: OpContext) -> str:
        return parser_name(ctx.migration, self.index)

    def _prepared(self, range_sql: str, ctx: OpContext) -> str:
        """The select over the range's rows; with parse_json, its text parsed into jsonb and the
        rows that do not parse left out (the invalid_json check counts them)."""
        select = self.select.replace(ROWS, self._rows(range_sql))
        if not self.parse_json:
            return select
        parser = self._parser(ctx)
        names = ", ".join(quote(c) for c in self.insert_columns)
        out = ", ".join(f"parsed.{quote(c)}" if c in self.parse_json else f"s.{quote(c)}"
                        for c in self.insert_columns)
        parsed = ", ".join(f"{parser}(s.{quote(c)}::text) AS {quote(c)}" for c in self.parse_json)
        keep = " AND ".join(f"(s.{quote(c)} IS NULL OR parsed.{quote(c)} IS NOT NULL)"
                            for c in self.parse_json)
        return (f"SELECT {out}\nFROM ({select}) AS s ({names})\n"
                f"CROSS JOIN LATERAL (SELECT {parsed}) AS parsed\nWHERE {keep}")

    def _on_conflict(self) -> str:
        if not self.upsert:
            return "ON CONFLICT DO NOTHING"
        rest = [c for c in self.insert_columns if c not in self.upsert]
        sets = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in rest)
        mine = ", ".join(f"target.{quote(c)}" for c in rest)
        theirs = ", ".join(f"EXCLUDED.{quote(c)}" for c in rest)
        return (f"ON CONFLICT ({', '.join(quote(k) for k in self.upsert)}) DO UPDATE SET {sets}\n"
                f"WHERE ROW({mine}) IS DISTINCT FROM ROW({theirs})")

    # -- keep_in_step: the set expressions applied to live writes until cutover -------------------
    @property
    def _trigger(self) -> str:
        return short_name("mdg", self.table.schema, self.table.name, f"backfill_{self.index}")

    def _trigger_actions(self) -> list[Action]:
        if not self.keep_in_step:
            return []
        columns = ", ".join(f"NEW.{quote(c)}" for c in self.set)
        values = ", ".join(f"({e})" for e in self.set.values())
        # every expression over the row as written, at once (as UPDATE ... SET evaluates them)
        body = (f"SELECT {values} INTO {columns} FROM (SELECT NEW.*) AS {ROW_ALIAS};")
        if self.predicate:
            body = f"IF {row_expression(self.predicate)} THEN\n    {body}\n  END IF;"
        return row_trigger(self.table, self._trigger, body, [],
                           f"apply backfill {self.index}'s set to live writes",
                           when=skip_writes_of(self._trigger))

    def start(self, ctx: OpContext) -> list[Action]:
        if self.into is None:
            return self._trigger_actions()
        return [create_parser(self._parser(ctx))] if self.parse_json else []

    def rollback(self, ctx: OpContext) -> list[Action]:
        if self.into is None:
            return drop_row_trigger(self.table, self._trigger) if self.keep_in_step else []
        return [drop_parser(self._parser(ctx))] if self.parse_json else []

    def complete(self, ctx: OpContext) -> list[Action]:
        return drop_row_trigger(self.table, self._trigger) if self.keep_in_step else []

    def uncomplete(self, ctx: OpContext) -> list[Action]:
        return self._trigger_actions()

    def unbackfill(self, ctx: OpContext) -> list[Action]:
        if self.into is not None:
            backup = ctx.backups.get(self.into)
            if backup is None:  # created by this migration: every row in it came after it
                return [Action(
                    f"delete the rows of {self.into}, a table this migration created (undo of "
                    "the insert backfill)",
                    f"DELETE FROM {self.into.sql}",
                    only_if=f"SELECT to_regclass({self.into.regclass_literal}) IS NOT NULL")]
            keys = ctx.key_of(self.into)
            undo = [delete_rows_not_in_backup(self.into, backup, keys, "undo of the insert backfill")]
            updated = [c for c in self.insert_columns if c not in keys
                       and c in ctx.backup_columns.get(self.into, [])]
            if self.upsert and updated:  # rows that were there got the select's values
                undo.append(restore_columns(self.into, backup, keys, updated,
                                            "undo of the upsert backfill"))
            return undo
        backup = ctx.backups.get(self.table)
        existed = [c for c in self.set if c in ctx.backup_columns.get(self.table, [])]
        if backup is None or not existed:
            return []
        return [restore_columns(self.table, backup, ctx.key_of(self.table), existed,
                                "undo of the backfill")]

    def checks(self, ctx: OpContext) -> list[ParityCheck]:
        if self.into is not None:
            return [self._insert_check(ctx), *self._json_check(ctx), *self._foreign_key_checks(ctx)]
        key = ctx.key_of(self.table)
        order = ", ".join(quote(k) for k in key) or "ctid"
        shown = f"ROW({order})" if key else "ctid"
        return [
            ParityCheck(
                f"{self.table.name}.backfill_{self.index}.applied",
                f"every {self.table} row{' matching where' if self.predicate else ''} has "
                f"{', '.join(self.set)} equal to the backfill's expressions",
                f"SELECT count(*) FROM {self.table.sql} WHERE {self._pending}",
                first_keys_sql(shown, f"FROM {self.table.sql}", self._pending, order),
                explain_sql=self._written_by_application_sql(ctx),
            ),
            *self._foreign_key_checks(ctx),
        ]

    def _written_by_application_sql(self, ctx: OpContext) -> str | None:
        """Why rows still differ once every batch is done: the application wrote them since the
        backup (state/capture.py; a `set` backfill has no trigger, so a row written after its
        batch keeps what was written), or the expressions do not give a backfilled row its own
        value again (`n + 1`)."""
        key, backup = ctx.key_of(self.table), ctx.backups.get(self.table)
        if not key or backup is None:
            return None
        written = f"NOT {untouched(capture_table(backup), key, self.table.sql)}"
        return (
            "SELECT nullif(concat_ws('; ', "
            "CASE WHEN app > 0 THEN app || ' of them written by the application since the backup "
            "(a backfill `set` has no trigger keeping live writes in step unless it says "
            "keep_in_step: true)' END, "
            "CASE WHEN tool > 0 THEN tool || ' of them not written by the application: the set "
            "expressions must give a row the backfill wrote its own value again, as "
            "`lower(email)` does and `n + 1` does not' END), '') "
            f"FROM (SELECT count(*) FILTER (WHERE {written}) AS app, "
            f"count(*) FILTER (WHERE NOT {written}) AS tool "
            f"FROM {self.table.sql} WHERE {self._pending}) AS c")

    def _foreign_key_checks(self, ctx: OpContext) -> list[ParityCheck]:
        if self.user_triggers == "fire":  # the FK triggers fired on every batch
            return []
        table = self.into or self.table
        written = None if self.into is not None else set(self.set)
        return foreign_key_checks(table, written, ctx.foreign_keys.get(table, []),
                                  f"{table.name}.backfill_{self.index}")

    def _insert_check(self, ctx: OpContext) -> ParityCheck:
        cols = ", ".join(quote(c) for c in self.insert_columns)
        missing = (f"({self._prepared('TRUE', ctx)})\n"
                   f"EXCEPT SELECT {cols} FROM {self.into.sql}")
        return ParityCheck(
            f"{self.into.name}.backfill_{self.index}.inserted",
            f"every row the select derives from {self.table} is in {self.into}",
            f"SELECT count(*) FROM ({missing}) AS missing",
            f"SELECT missing::text FROM ({missing}) AS missing LIMIT 20",
        )

    def _json_check(self, ctx: OpContext) -> list[ParityCheck]:
        """Rows whose parse_json text is not JSON: skipped by the batches, named here by the key
        of `into` the select gives them (upsert's, else every column)."""
        if not self.parse_json:
            return []
        parser = self._parser(ctx)
        names = ", ".join(quote(c) for c in self.insert_columns)
        bad = " OR ".join(f"(s.{quote(c)} IS NOT NULL AND {parser}(s.{quote(c)}::text) IS NULL)"
                          for c in self.parse_json)
        rows = f"({self.select.replace(ROWS, self._rows('TRUE'))}) AS s ({names}) WHERE {bad}"
        key = self.upsert or ctx.key_of(self.into) or self.insert_columns[:1]
        shown = " || ', ' || ".join(f"{literal(k + '=')} || coalesce(s.{quote(k)}::text, 'NULL')" for k in key)
        return [ParityCheck(
            f"{self.into.name}.backfill_{self.index}.invalid_json",
            f"every {', '.join(self.parse_json)} the select gives from {self.table} is valid JSON "
            "(rows that are not were skipped)",
            f"SELECT count(*) FROM {rows}",
            f"SELECT {shown} FROM {rows} ORDER BY {', '.join(f's.{quote(k)}' for k in key)} LIMIT 20",
        )]

    def summary(self) -> str:
        target = f"into {self.into}" if self.into else ", ".join(self.set)
        return f"backfill {self.table}: {target}"
