"""Typed errors. Each names what is wrong and, where it can, the file and field, and what to do.

Tests match on the error's type; the CLI prints `str(error)` as one line and maps the type to an
exit code. Three properties tell a caller (the rollback policy, the sensor) what happened without
matching messages:

    exit_code   what the CLI exits with
    retryable   nothing changed and the same command may succeed later (another run holds the
                lock, a lock could not be taken in time, the database was unreachable)
    ran         False for a refusal: the step checked something and stopped before changing
                anything (RefusedError and bad input); True when it may have changed something

Across a process boundary (a failed Dagster run's serialised error keeps only the class name),
`error_class(name)` gives the class back, so the decision stays on the class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .reports import CheckOutcome

_BY_NAME: dict[str, type["MigrationError"]] = {}


class MigrationError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code = 1
    retryable = False
    ran = True

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        _BY_NAME[cls.__name__] = cls

    def one_line(self) -> str:
        return " ".join(str(self).split())


_BY_NAME[MigrationError.__name__] = MigrationError


def error_class(name: str) -> type[MigrationError] | None:
    """Our error class of that name (as a serialised error records it), or None for others."""
    return _BY_NAME.get(name)


class SpecError(MigrationError):
    """A migration file is malformed. Nothing has run."""

    exit_code = 2
    ran = False

    def __init__(self, file: str, field: str, message: str):
        self.file = file
        self.field = field
        self.message = message
        super().__init__(f"{file}: {field}: {message}")


class UnsafeIdentifierError(SpecError):
    """An identifier we refuse to put in SQL, even quoted."""


class MigrationGraphError(MigrationError):
    """depends_on forms a cycle, names a missing migration, or leaves two heads."""

    exit_code = 2
    ran = False


class UnknownMigrationError(MigrationError):
    exit_code = 2
    ran = False

    def __init__(self, name: str, known: list[str]):
        self.name = name
        super().__init__(
            f"no migration named {name!r}; known: {', '.join(sorted(known)) or '(none)'}"
        )


class SchemaValidationError(MigrationError):
    """The live schema does not allow an operation (missing table, column exists, ...)."""

    exit_code = 2
    ran = False

    def __init__(self, where: str, message: str):
        self.where = where
        super().__init__(f"{where}: {message}")


class TableDoesNotExistError(SchemaValidationError):
    def __init__(self, where: str, table: str):
        self.table = table
        super().__init__(where, f"table {table} does not exist")


class ColumnDoesNotExistError(SchemaValidationError):
    def __init__(self, where: str, table: str, column: str):
        self.table, self.column = table, column
        super().__init__(where, f"column {column!r} does not exist in table {table}")


class ColumnAlreadyExistsError(SchemaValidationError):
    def __init__(self, where: str, table: str, column: str):
        self.table, self.column = table, column
        super().__init__(where, f"column {column!r} already exists in table {table}")


class TableAlreadyExistsError(SchemaValidationError):
    def __init__(self, where: str, table: str):
        self.table = table
        super().__init__(where, f"table {table} already exists")


class NoPrimaryKeyError(SchemaValidationError):
    def __init__(self, where: str, table: str):
        self.table = table
        super().__init__(
            where,
            f"table {table} has no primary key or unique NOT NULL key; "
            "add one before a batched backfill can address its rows",
        )


class DatabaseUnavailableError(MigrationError):
    exit_code = 5
    retryable = True
    ran = False

    def __init__(self, url_for_display: str, cause: str):
        super().__init__(
            f"cannot connect to database {url_for_display}: {cause}; "
            "check --database-url / MIGRATION_DAGS_DATABASE_URL and that the server is running"
        )


class ConnectionLostError(DatabaseUnavailableError):
    """The connection dropped in the middle of a step (a server restart, a network cut). Every
    step is recorded started before its first change and resumes or undoes its own partial work,
    so nothing is lost: the same command, or `up`, carries on from where it stopped."""

    ran = True  # unlike a failed connect, the step may have changed something before the drop

    def __init__(self, migration: str, step: str, direction: str, cause: str):
        self.migration, self.step, self.direction = migration, step, direction
        again = {
            "down": f"migration-dags down {migration}` to continue the rollback",
            "restore": f"migration-dags restore {migration}` again",
        }.get(direction, f"migration-dags up {migration}` to resume")
        MigrationError.__init__(
            self,
            f"{migration}: the connection to the database was lost during step {step} "
            f"({direction}): {cause}; the step's partial work is recorded and nothing is lost: "
            f"once the server is back, run `{again} (or give --retry-on-disconnect N)"
        )


class DatabaseUrlError(MigrationError):
    """A database URL libpq cannot read. Nothing has connected."""

    exit_code = 2

    def __init__(self, url_for_display: str, cause: str):
        super().__init__(
            f"cannot read the database URL {url_for_display!r}: {cause}; give --database-url "
            "(or MIGRATION_DAGS_DATABASE_URL) as postgresql://user:password@host:port/dbname or as "
            "key=value pairs such as 'host=localhost dbname=app'"
        )


class MigrationLockedError(MigrationError):
    """Another migration run holds the advisory lock on this database."""

    exit_code = 6
    retryable = True
    ran = False

    def __init__(self, holder: str):
        self.holder = holder
        super().__init__(
            f"another migration run holds the lock on this database ({holder}); "
            "wait for it to finish, or stop it, then run again"
        )


class LockTimeoutExhaustedError(MigrationError):
    """Our statement gave way to clients every time; it changed nothing (its transaction rolled
    back), so the step can simply be run again."""

    exit_code = 7
    retryable = True

    def __init__(self, sql: str, attempts: int, lock_timeout_ms: int):
        self.sql = sql
        super().__init__(
            f"could not take the lock for {sql.splitlines()[0][:80]!r} after {attempts} tries "
            f"of {lock_timeout_ms} ms; a long transaction is holding the table: find it in "
            "pg_stat_activity, then run again"
        )


class RefusedError(MigrationError):
    """A step refused to run and changed nothing: run out of order (an earlier step is not
    applied), a backfill partition that is not planned, validation before every partition is
    done, a restore with nothing to restore. The message says what to run first."""

    exit_code = 1
    ran = False


class StepFailedError(MigrationError):
    """A step failed while changing the database; its own partial work has been undone (the
    message says so, or says what could not be undone)."""

    exit_code = 1


class ValidationFailedError(MigrationError):
    """Validation ran and a check failed. `outcomes` holds every check, passed or not."""

    exit_code = 3

    def __init__(self, message: str, outcomes: list["CheckOutcome"]):
        super().__init__(message)
        self.outcomes = list(outcomes)


class RollbackFailedError(MigrationError):
    exit_code = 4


class BackfillFailedError(MigrationError):
    """A backfill batch failed on the data (a `set` expression dividing by zero on some row, a
    cast that does not fit, a constraint). That batch rolled back; the batches before it stay
    committed and the partition's saved position is after them, so nothing is half-written.
    The message names the migration, the partition, the batch's key range, the first failing key
    where it could be found, and the database error; it says how to go on: fix the file and
    `up --allow-changed` resumes from the saved position, or `down` undoes the committed batches."""

    exit_code = 8

    def __init__(self, migration: str, partition: str, task: str, key_range: str,
                 first_key: str | None, db_error: str, committed_rows: int, position: str):
        self.migration, self.partition, self.key_range = migration, partition, key_range
        self.first_key, self.db_error, self.committed_rows = first_key, db_error, committed_rows
        first = (f"first failing key {first_key}" if first_key
                 else "the failing row could not be narrowed down")
        super().__init__(
            f"{migration}: step backfill, partition {partition} ({task}): a batch in key range "
            f"{key_range} (the partition's unfinished part) failed: {db_error}; {first}. That "
            f"batch rolled back; {committed_rows} "
            f"rows other batches of this partition wrote in this run stay committed, and the "
            f"partition resumes after key {position}. Fix the expression in the migration file and run "
            f"`migration-dags up {migration} --allow-changed` to resume, or "
            f"`migration-dags down {migration}` to undo what was committed"
        )


class MigrationFileChangedError(MigrationError):
    """The migration file changed since it was applied; up/down stop before any change unless
    --allow-changed is given. The message holds a summary of the differences."""

    exit_code = 2
    ran = False


class OldShapeWritesError(RefusedError):
    """`complete` refused: writes in the old shape (an old release still running) were seen within
    the quiet period. Nothing changed; the migration stays expanded."""

    exit_code = 10

    def __init__(self, migration: str, writes: int, last_at: str, age_s: float,
                 quiet_seconds: float, tables: str, version_schemas: str):
        self.writes, self.last_at, self.age_s = writes, last_at, age_s
        super().__init__(
            f"{migration}: not completed: {writes} writes in the old shape were seen on {tables}, "
            f"the last {age_s:.0f} s ago (at {last_at}), within the quiet period of "
            f"{quiet_seconds:g} s; an application release still writes without search_path = "
            f"{version_schemas}. Deploy the new release everywhere and run `migration-dags "
            f"complete {migration}` again once none is seen for the quiet period "
            f"(--quiet-seconds), or contract anyway with --force (audited)"
        )
