"""What a migration file may hold, declared. The loader validates a file with `migration_file_model()`.

    name: add_email_verification          # must match the file name
    description: ...
    depends_on: [create_users]            # ordering; cycles and two heads are errors
    database: default                     # or {url_env: ORDERS_DATABASE_URL}
    tables: [users]                       # every table the operations change
    settings: {lock_timeout_ms: 500, retries: 8, batch_size: 2000, partition_rows: 250000}
    validation: {row_count: exact, suites: [users_email_verification]}
    allow_functions: [app.normalise_email]  # functions expressions may call beyond the safe ones
    operations:
      - add_column: {table: users, column: {name: email_verified, type: boolean, default: 'false'}}

Each operation's body is declared beside its class, in operations/<kind>.py; the operations list
takes every registered kind (one alternative per kind in the JSON Schema).
"""

from __future__ import annotations

import functools
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from .migration import BackfillSchedule, MigrationSettings, ValidationSpec
from .problems import problem
from .tenants import TenantsField
from .types import Flag, SpecModel, TableList, Text, a_list, whole_number

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
# five cron fields of digits, names, *, /, - and commas; Dagster checks the rest when it loads
_CRON = re.compile(r"^\s*([0-9A-Za-z*/,\-]+\s+){4}[0-9A-Za-z*/,\-]+\s*$")
_FUNCTION_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_$]*\.)?[A-Za-z_][A-Za-z0-9_$]*$")
_DEFAULT = MigrationSettings()


class SettingsSpec(SpecModel):
    """How the migration runs: lock timeouts and retries, backfill batches and their throttle."""

    lock_timeout_ms: whole_number(1) = _DEFAULT.lock_timeout_ms
    """How long one DDL statement waits for its lock before it gives up and retries."""
    retries: whole_number(0) = _DEFAULT.retries
    """Tries after a lock timeout before the step fails (waits grow between tries)."""
    batch_size: whole_number(1) = _DEFAULT.batch_size
    """Rows per backfill batch (one short transaction each)."""
    partition_rows: whole_number(1) = _DEFAULT.partition_rows
    """Rows per backfill partition (the unit Dagster runs, retries and reports)."""
    batch_pause_ms: whole_number(0) = _DEFAULT.batch_pause_ms
    """Pause between batches."""
    max_client_wait_ms: whole_number(0) = _DEFAULT.max_client_wait_ms
    """Step aside (pause) when clients have waited this long on a batch (0: never)."""
    max_transaction_age_s: whole_number(0) = _DEFAULT.max_transaction_age_s
    """Pause the backfill while a transaction is older than this (0: no limit)."""
    max_replication_lag_s: whole_number(0) = _DEFAULT.max_replication_lag_s
    """Pause the backfill while a replica lags more than this (0: no limit)."""

    def settings(self) -> MigrationSettings:
        return MigrationSettings(**self.model_dump())


def _suite_names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value] if value else []
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
        raise problem("must be a list of suite names (files in expectations/)")
    return tuple(value)


class ValidationSection(SpecModel):
    """What the validation step checks before cutover, beside each operation's own checks."""

    row_count: Literal["exact", "grows", "any"] = "exact"
    """Row counts of the changed tables against their backups: equal, not fewer, or not checked."""
    suites: Annotated[
        tuple[str, ...], BeforeValidator(_suite_names, json_schema_input_type=str | list[str])
    ] = ()
    """Great Expectations suites to run: names of files in expectations/ (without .json)."""
    row_count_tolerance: whole_number(0) = 0
    """With row_count exact: how many rows more or fewer than backup + inserted - deleted still pass."""

    def spec(self) -> ValidationSpec:
        return ValidationSpec(self.row_count, self.suites, self.row_count_tolerance)


class DatabaseSpec(SpecModel):
    """Another database than the default one, by the environment variable holding its URL."""

    url_env: Text

    @field_validator("url_env")
    @classmethod
    def _environment_variable(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise problem("must be an environment variable name such as ORDERS_DATABASE_URL")
        return value


class ScheduleSpec(SpecModel):
    """Off-peak backfill: Dagster backfills missing key ranges only inside this window."""

    cron: Text
    """When the window opens, as a cron expression, e.g. '0 1 * * *' (01:00 every day)."""
    timezone: Text = "UTC"
    """The cron expression's time zone, e.g. Europe/Berlin."""
    window_minutes: whole_number(1) = 240
    """How long the window stays open; no key range starts after it closes."""
    max_partitions_per_tick: whole_number(1) = 4
    """Key ranges started per tick of the schedule (every 5 minutes) at the most."""

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        if not _CRON.match(value):
            raise problem("must be a cron expression of five fields, e.g. '0 1 * * *'")
        return value.strip()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise problem(f"{value!r} is not a time zone name such as UTC or Europe/Berlin") from None
        return value

    def schedule(self) -> BackfillSchedule:
        return BackfillSchedule(**self.model_dump())


def _database(value: Any) -> Any:
    if value == "default":
        return None
    if not isinstance(value, dict):
        raise problem("must be 'default' or a mapping {url_env: VARIABLE}")
    return value


def _migration_names(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise problem("must be a list of migration names")
    return value


def _function_names(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(
        isinstance(v, str) and _FUNCTION_NAME.match(v) for v in value
    ):
        raise problem("must be a list of function names: lower, or schema.name")
    return value


def allow_functions_of(data: Any) -> list[str]:
    """The file's allow_functions as written, for the expressions' validators (they run before
    the field itself is validated); an invalid list allows nothing and is reported by the field."""
    value = data.get("allow_functions") if isinstance(data, dict) else None
    try:
        return _function_names(value) if value is not None else []
    except Exception:
        return []


def _migration_name(value: Any) -> Any:
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise problem("must be lower_snake_case, start with a letter, at most 63 chars")
    return value


class MigrationFileBase(SpecModel):
    """A migration: reversible, validated PostgreSQL schema and data changes, run in steps."""

    name: Annotated[str, Field(pattern=NAME_PATTERN.pattern), BeforeValidator(_migration_name)]
    """The migration's name: lower_snake_case, the file's name without .yaml."""
    description: Text = ""
    depends_on: Annotated[
        list[str], BeforeValidator(_migration_names, json_schema_input_type=str | list[str])
    ] = []
    """Migrations that must run before this one."""
    database: Annotated[
        DatabaseSpec | None,
        BeforeValidator(_database, json_schema_input_type=Literal["default"] | DatabaseSpec),
    ] = None
    """'default' (the URL given to the tool), or {url_env: VARIABLE} naming another database."""
    tables: TableList = []
    """Tables the operations change that they do not name themselves (raw_sql): backed up first."""
    settings: SettingsSpec = SettingsSpec()
    validation: ValidationSection = ValidationSection()
    schedule: ScheduleSpec | None = None
    """Backfill off-peak from a Dagster schedule, inside a daily (or other) window."""
    auto_complete: Flag = False
    """Run validation and cutover by themselves once every key range is backfilled (with a
    schedule); otherwise they wait for a person."""
    allow_functions: Annotated[
        list[str], BeforeValidator(_function_names, json_schema_input_type=str | list[str])
    ] = []
    """Functions expressions may call besides the built-in ones without side effects (see
    spec/functions.py): name or schema.name, e.g. [app.normalise_email, nextval]."""

    tenants: TenantsField = None
    """One migration over many tenants: a schema pattern ('tenant_*': every matching schema of
    the target database) or a list of databases [{url_env: ACME_DATABASE_URL}, ...]. Each tenant
    has its own state, validation and rollback (migration_dags/tenants.py)."""

    @field_validator("name")
    @classmethod
    def _matches_the_file(cls, name: str, info: ValidationInfo) -> str:
        file_name = (info.context or {}).get("file_name")
        if file_name is not None and name != file_name.rsplit(".", 1)[0]:
            raise problem(f"is {name!r} but the file is named {file_name!r}; make them match")
        return name


def _one_alternative_per_kind(schema: dict[str, Any]) -> None:
    """Editors see `oneOf` an object with one key per kind, not one object with every kind."""
    properties = schema.pop("properties")
    schema.pop("additionalProperties", None)
    schema["oneOf"] = [
        {
            "title": kind,
            "type": "object",
            "properties": {kind: {k: v for k, v in body.items() if k != "default"}},
            "required": [kind],
            "additionalProperties": False,
        }
        for kind, body in properties.items()
    ]


class OperationItemBase(BaseModel):
    """One operation: a mapping with one key, the operation's kind, over its body."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_alternative_per_kind)

    @model_validator(mode="before")
    @classmethod
    def _one_known_kind(cls, data: Any) -> Any:
        if not isinstance(data, dict) or len(data) != 1:
            raise problem("must be a mapping with exactly one operation type as its key")
        kind = next(iter(data))
        kinds = sorted(field.alias for field in cls.model_fields.values())
        if kind not in kinds:
            raise problem(f"unknown operation type {kind!r} (known: {', '.join(kinds)})")
        return data

    @property
    def kind(self) -> str:
        (field_name,) = self.model_fields_set
        return type(self).model_fields[field_name].alias

    @property
    def body(self) -> SpecModel:
        (field_name,) = self.model_fields_set
        return getattr(self, field_name)


@functools.cache
def migration_file_model() -> type[MigrationFileBase]:
    """The whole file's model. Built on first use: the operation types register themselves as
    their modules are imported, and those modules import this package's field types."""
    from ..operations import OPERATION_TYPES

    item = create_model(
        "OperationItem",
        __base__=OperationItemBase,
        **{f"op_{kind}": (Annotated[op.spec, Field(alias=kind)], None)
           for kind, op in sorted(OPERATION_TYPES.items())},
    )
    operations = Annotated[
        list[item],
        BeforeValidator(a_list("must be a non-empty list", non_empty=True)),
        Field(min_length=1, description="The changes, in order: each a mapping {kind: body}."),
    ]
    return create_model(
        "MigrationFile", __base__=MigrationFileBase, __doc__=MigrationFileBase.__doc__,
        operations=(operations, ...),
    )
