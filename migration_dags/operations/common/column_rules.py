"""What alter_column and drop_column both refuse about the column they rewrite or drop: views
that depend on it (drop_column only: alter_column carries them over), what else PostgreSQL would
not let the cutover drop it from under (a policy, a generated column, a trigger's UPDATE OF or
WHEN), a table without a key (their undo matches rows to the backup by key), a key column, and a
default drawn from a sequence. Each operation words the remedy for its own case."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import NoPrimaryKeyError, SchemaValidationError
from ...identifiers import TableName
from ...schema_model import ColumnModel, TableModel


@dataclass(frozen=True)
class Remedies:
    views: str        # after "is used by view(s) ...; "
    key_column: str   # after "column 'x' is part of the key of t"
    sequence: str     # after "column 'x' of t takes its default from a sequence"


def refuse_unsafe_column(
    where: str, name: TableName, table: TableModel, column: ColumnModel, remedies: Remedies,
    views_carried: bool = False,
) -> None:
    """views_carried: the operation carries the views over itself (alter_column)."""
    col = column.name
    views = table.dependent_views.get(col)
    if views and not views_carried:
        raise SchemaValidationError(
            where, f"column {col!r} of {name} is used by view(s) {', '.join(sorted(views))}; "
            f"{remedies.views}")
    readers = table.column_readers.get(col)
    if readers:
        them = _pronoun(readers)
        raise SchemaValidationError(
            where, f"column {col!r} of {name} is read by {', '.join(readers)}: PostgreSQL would "
            f"refuse to drop it at cutover, after the whole backfill, and this operation cannot "
            f"carry {them} over. Change {them} not to read {col!r} first, in an earlier migration")
    own = table.partition_dependents.get(col)
    if own:
        them = _pronoun(own)
        raise SchemaValidationError(
            where, f"column {col!r} of partitioned table {name} has, in its partitions, "
            f"{', '.join(own)}: dropping the column at cutover would drop {them} too, and nothing "
            f"would put {them} back. Drop {them} first (raw_sql) and re-create {them} after the "
            f"cutover, or make {them} the partitions' part of an index or constraint of {name}")
    if not table.primary_key:
        raise NoPrimaryKeyError(where, str(name))
    if col in table.primary_key:
        raise SchemaValidationError(
            where, f"column {col!r} is part of the key of {name}{remedies.key_column}")
    if column.default_sql and "nextval(" in column.default_sql:
        raise SchemaValidationError(
            where, f"column {col!r} of {name} takes its default from a sequence{remedies.sequence}")


def _pronoun(things: list[str]) -> str:
    return "them" if len(things) > 1 else "it"


def refuse_triggers_naming(where: str, name: TableName, table: TableModel, column: str,
                           reviewed: list[str], after: str) -> None:
    """A user trigger that names `column` where PostgreSQL does not follow it (its arguments, its
    function's NEW.col) fails every write that fires it `after` the change (pagila's
    film_fulltext_trigger after a rename of description: "column does not exist"). Refused by
    name, unless the migration lists it in `triggers_reviewed`."""
    left = [t for t in table.triggers_naming.get(column, []) if t.split(" (")[0] not in reviewed]
    if left:
        names = ", ".join(t.split(" (")[0] for t in left)
        raise SchemaValidationError(
            where, f"trigger {'; '.join(left)} on {name} uses column {column!r} by name: {after} "
            f"every write that fires it would fail. Change it first so that it works either way "
            f"(or re-create it with a raw_sql at `step: complete` after this operation, writes "
            f"failing in between), then list it in this operation's `triggers_reviewed: [{names}]`")
