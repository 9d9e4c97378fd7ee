"""A loaded migration: the file's settings and its operation objects, ready for the engine.

These are the values the rest of the package uses; models.py declares what the file may say.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..batches.throttle import ThrottleSettings
from ..identifiers import TableName

if TYPE_CHECKING:
    from ..operations.base import Operation
    from ..tenants import Tenant
    from .tenants import Tenants


@dataclass(frozen=True)
class MigrationSettings:
    lock_timeout_ms: int = 500
    retries: int = 8
    batch_size: int = 2_000  # measured best under traffic (README, Benchmarks)
    partition_rows: int = 250_000
    batch_pause_ms: int = 0
    # the backfill's throttle (batches/throttle.py): step aside when clients waited this long on a batch
    # (0: never); pause while a transaction is older, or a replica lags more, than this (0: no limit)
    max_client_wait_ms: int = ThrottleSettings.max_client_wait_ms
    max_transaction_age_s: int = int(ThrottleSettings.max_transaction_age_s)
    max_replication_lag_s: int = int(ThrottleSettings.max_replication_lag_s)


@dataclass(frozen=True)
class ValidationSpec:
    row_count: str = "exact"  # exact | grows | any
    suites: tuple[str, ...] = ()
    row_count_tolerance: int = 0  # exact: rows more or fewer than expected still passing


@dataclass(frozen=True)
class BackfillSchedule:
    """Off-peak backfill: a window that opens at each `cron` time (in `timezone`) and stays open
    `window_minutes`; inside it, at most `max_partitions_per_tick` key ranges start per tick."""

    cron: str
    timezone: str = "UTC"
    window_minutes: int = 240
    max_partitions_per_tick: int = 4


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
    operations: list["Operation"] = field(default_factory=list)
    schedule: BackfillSchedule | None = None
    # validation and cutover run by themselves once every backfill partition is done
    auto_complete: bool = False
    # functions its expressions may call beyond the safe built-ins (spec/functions.py)
    allow_functions: tuple[str, ...] = ()
    # `tenants:` as the file declares them (a schema pattern or databases); None: one database
    tenants: "Tenants | None" = None
    # on the copy made for one tenant (tenants.py): which one; None on the file's own migration
    tenant: "Tenant | None" = None

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
