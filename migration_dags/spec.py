"""Migration files: YAML in, a checked `Migration` out, or a one-line SpecError naming file and field.

    name: add_email_verification          # must match the file name
    description: ...
    depends_on: [create_users]            # ordering; cycles and two heads are errors
    database: default                     # or {url_env: ORDERS_DATABASE_URL}
    tables: [users]                       # every table the operations change
    settings: {lock_timeout_ms: 500, retries: 8, batch_size: 10000, partition_rows: 250000}
    validation: {row_count: exact, suites: [users_email_verification]}
    operations:
      - add_column: {table: users, column: {name: email_verified, type: boolean, default: 'false'}}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import SpecError
from .fields import FieldReader
from .identifiers import TableName
from .operations import OPERATION_TYPES
from .operations.base import Operation
from .batches.throttle import ThrottleSettings

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class MigrationSettings:
    lock_timeout_ms: int = 500
    retries: int = 8
    batch_size: int = 10_000
    partition_rows: int = 250_000
    batch_pause_ms: int = 0
    # the backfill's throttle (throttle.py): cancel a batch a client waited on this long (0:
    # never); pause while a transaction is older, or a replica lags more, than this (0: no limit)
    max_client_wait_ms: int = ThrottleSettings.max_client_wait_ms
    max_transaction_age_s: int = int(ThrottleSettings.max_transaction_age_s)
    max_replication_lag_s: int = int(ThrottleSettings.max_replication_lag_s)


@dataclass(frozen=True)
class ValidationSpec:
    row_count: str = "exact"  # exact | grows | any
    suites: tuple[str, ...] = ()
    row_count_tolerance: int = 0  # exact: rows more or fewer than expected still passing


@dataclass
class Migration:
    name: str
    description: str
    file: Path
    depends_on: list[str]
    database_url_env: str | None
    tables: list[TableName]
    settings: MigrationSettings
    validation: ValidationSpec
    operations: list[Operation] = field(default_factory=list)

    def touched_tables(self) -> set[TableName]:
        found: set[TableName] = set(self.tables)
        for op in self.operations:
            found |= op.tables()
        return found

    def created_tables(self) -> set[TableName]:
        made: set[TableName] = set()
        for op in self.operations:
            made |= op.created_tables()
        return made

    def existing_tables(self) -> list[TableName]:
        """Touched tables that exist before the migration: these are backed up."""
        return sorted(self.touched_tables() - self.created_tables())


def load_migration(path: Path) -> Migration:
    file = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(file, "(file)", f"cannot read: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(file)"
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise SpecError(file, where, f"not valid YAML: {problem}") from exc
    reader = FieldReader(file, "", data if data is not None else "")
    name = reader.string("name")
    if not NAME_PATTERN.match(name):
        raise reader.error("name", "must be lower_snake_case, start with a letter, at most 63 chars")
    if name != path.stem:
        raise reader.error("name", f"is {name!r} but the file is named {path.name!r}; make them match")
    description = reader.string("description", required=False, default="") or ""
    depends_on = _depends_on(reader)
    database_url_env = _database(reader)
    tables = _tables(reader)
    settings = _settings(reader)
    validation = _validation(reader)
    operations = _operations(reader)
    reader.finish()
    return Migration(
        name, description, path, depends_on, database_url_env, tables, settings, validation, operations
    )


def _depends_on(reader: FieldReader) -> list[str]:
    value = reader.raw("depends_on")
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise reader.error("depends_on", "must be a list of migration names")
    return list(value)


def _database(reader: FieldReader) -> str | None:
    value = reader.raw("database")
    if value is None or value == "default":
        return None
    if isinstance(value, dict):
        sub = FieldReader(reader.file, "database", value)
        env = sub.string("url_env")
        sub.finish()
        if not re.match(r"^[A-Z_][A-Z0-9_]*$", env):
            raise sub.error("url_env", "must be an environment variable name such as ORDERS_DATABASE_URL")
        return env
    raise reader.error("database", "must be 'default' or a mapping {url_env: VARIABLE}")


def _tables(reader: FieldReader) -> list[TableName]:
    value = reader.raw("tables")
    if value is None:
        return []
    if not isinstance(value, list):
        raise reader.error("tables", "must be a list of table names")
    holder = FieldReader(reader.file, "tables", {str(i): v for i, v in enumerate(value)})
    return [holder.table(str(i)) for i in range(len(value))]


def _settings(reader: FieldReader) -> MigrationSettings:
    sub = reader.mapping("settings", required=False)
    if sub is None:
        return MigrationSettings()
    d = MigrationSettings()
    settings = MigrationSettings(
        lock_timeout_ms=sub.integer("lock_timeout_ms", d.lock_timeout_ms, minimum=1),
        retries=sub.integer("retries", d.retries),
        batch_size=sub.integer("batch_size", d.batch_size, minimum=1),
        partition_rows=sub.integer("partition_rows", d.partition_rows, minimum=1),
        batch_pause_ms=sub.integer("batch_pause_ms", d.batch_pause_ms),
        max_client_wait_ms=sub.integer("max_client_wait_ms", d.max_client_wait_ms),
        max_transaction_age_s=sub.integer("max_transaction_age_s", d.max_transaction_age_s),
        max_replication_lag_s=sub.integer("max_replication_lag_s", d.max_replication_lag_s),
    )
    sub.finish()
    return settings


def _validation(reader: FieldReader) -> ValidationSpec:
    sub = reader.mapping("validation", required=False)
    if sub is None:
        return ValidationSpec()
    row_count = sub.string("row_count", required=False, default="exact")
    if row_count not in ("exact", "grows", "any"):
        raise sub.error("row_count", f"must be exact, grows or any, got {row_count!r}")
    suites = sub.raw("suites") or []
    if isinstance(suites, str):
        suites = [suites]
    if not isinstance(suites, list) or not all(isinstance(s, str) and s for s in suites):
        raise sub.error("suites", "must be a list of suite names (files in expectations/)")
    tolerance = sub.integer("row_count_tolerance", 0)
    sub.finish()
    return ValidationSpec(row_count, tuple(suites), tolerance)


def _operations(reader: FieldReader) -> list[Operation]:
    value = reader.raw("operations", required=True)
    if not isinstance(value, list) or not value:
        raise reader.error("operations", "must be a non-empty list")
    operations = []
    for index, item in enumerate(value):
        path = f"operations[{index}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise SpecError(
                reader.file, path, "must be a mapping with exactly one operation type as its key"
            )
        kind, body = next(iter(item.items()))
        op_type = OPERATION_TYPES.get(kind)
        if op_type is None:
            known = ", ".join(sorted(OPERATION_TYPES))
            raise SpecError(reader.file, path, f"unknown operation type {kind!r} (known: {known})")
        operations.append(op_type(FieldReader(reader.file, f"{path}.{kind}", body), index))
    return operations
