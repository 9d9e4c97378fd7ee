"""Multi-tenant migrations: one migration file run over many tenants, each on its own.

A migration that says `tenants:` (spec/tenants.py) is run once per tenant by the same engine,
on a copy of the migration made for that tenant (`for_tenant`):

    schemas "tenant_*"   every schema of the target database matching the pattern (resolved when
                         the command runs, in name order); the copy's tables in schema public
                         (unqualified names are public) are re-qualified to the tenant's schema,
                         and so are its suites' tables. Tables named inside SQL text (a raw_sql,
                         a select) are not: name them through the operation's fields, or
                         qualify them yourself
    databases            one database per tenant, its URL in the tenant's variable; the copy runs
                         there, tables unchanged

Each copy is named `<migration>__<tenant>`, so each tenant has its own state (applied steps,
backups, key ranges), its own Dagster asset group and runs, validation and rollback. A tenant is
the unit of failure: when its validation fails it is rolled back alone (its down, ending with the
proof that its tables equal their backup) and named; the tenants before it stay applied and the
ones after it are still run. Any other failure stops the fan-out at that tenant (which resumes or
rolls back as any migration does), leaving the later tenants untouched. `--tenant` selects some
tenants: a canary run on one before the rest.

    resolve(migration, url)       the tenants, as Tenant records, in order
    for_tenant(migration, t)      the tenant's copy of the migration
    retarget_suite(suite, m)      a suite's table, re-qualified for the tenant's copy
    run_up / run_down / status    the fan-out on the engine (no Dagster): tests and embedding;
                                  the CLI's runs go through orchestration/tenants.py
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from pydantic import BaseModel

from .errors import MigrationError, SpecError, ValidationFailedError
from .identifiers import TableName

DEFAULT_SCHEMA = "public"
Log = Callable[[str], None]


@dataclass(frozen=True)
class Tenant:
    name: str
    schema: str | None = None  # schema tenants
    url_env: str | None = None  # database tenants


# -- which tenants ---------------------------------------------------------------------------------
def like_pattern(pattern: str) -> str:
    """'tenant_*' -> 'tenant\\_%' (a LIKE pattern: * is any text, _ is itself)."""
    return pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_").replace("*", "%")


def resolve(migration: Any, database_url: str) -> list[Tenant]:
    """The migration's tenants, in name order; [] when it has none."""
    spec = migration.tenants
    if spec is None:
        return []
    if spec.databases:
        return [Tenant(d.name, url_env=d.url_env) for d in spec.databases]
    from .db import connect
    from .expand.version_schema import VERSION_SCHEMA_MARK
    from .state import BACKUP_SCHEMA, STATE_SCHEMA

    with connect(database_url, f"migration-dags {migration.name} tenants") as conn:
        # never the tool's own schemas, nor the version schemas an expanded tenant has
        # (tenant_a_<migration> matches tenant_* too)
        names = [r[0] for r in conn.execute(
            """SELECT nspname FROM pg_namespace WHERE nspname LIKE %s
               AND nspname NOT LIKE 'pg\\_%%' AND nspname <> ALL(%s)
               AND coalesce(obj_description(oid, 'pg_namespace'), '') NOT LIKE %s
               ORDER BY nspname""",
            (like_pattern(spec.schema_pattern), ["information_schema", STATE_SCHEMA, BACKUP_SCHEMA],
             VERSION_SCHEMA_MARK + "%"))]
    if not names:
        raise SpecError(str(migration.file), "tenants",
                        f"no schema of the target database matches {spec.schema_pattern!r}")
    return [Tenant(n, schema=n) for n in names]


def select(tenants: list[Tenant], wanted: Iterable[str] | None, where: str) -> list[Tenant]:
    """The tenants named in `wanted` (all when empty), or an error naming the known ones."""
    wanted = list(wanted or [])
    if not wanted:
        return tenants
    known = {t.name: t for t in tenants}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise SpecError(where, "--tenant", f"no tenant named {', '.join(map(repr, unknown))}; "
                                           f"known: {', '.join(known) or '(none)'}")
    return [t for t in tenants if t.name in wanted]


def tenant_url(tenant: Tenant, database_url: str, where: str) -> str:
    if tenant.url_env is None:
        return database_url
    url = os.environ.get(tenant.url_env, "").strip()
    if not url:
        raise SpecError(where, "tenants", f"tenant {tenant.name}'s database is in "
                                          f"${tenant.url_env}, which is not set")
    return url


# -- a tenant's copy -----------------------------------------------------------------------------
def for_tenant(migration: Any, tenant: Tenant) -> Any:
    """The migration as it runs for `tenant` (see the module doc)."""
    schema = tenant.schema
    operations = [requalify_operation(op, schema) for op in migration.operations] if schema \
        else list(migration.operations)
    return dataclasses.replace(
        migration, name=f"{migration.name}__{tenant.name}", operations=operations,
        tables=[requalified(t, schema) for t in migration.tables] if schema else list(migration.tables),
        database_url_env=tenant.url_env or migration.database_url_env,
        tenants=None, tenant=tenant)


def requalify_operation(op: Any, schema: str) -> Any:
    new = copy.copy(op)
    new.__dict__ = {k: requalified(v, schema) for k, v in op.__dict__.items()}
    return new


def requalified(value: Any, schema: str | None) -> Any:
    """`value` with every TableName in schema public moved to `schema`, however deep."""
    if schema is None:
        return value
    if isinstance(value, TableName):
        return TableName(schema, value.name) if value.schema == DEFAULT_SCHEMA else value
    if isinstance(value, list):
        return [requalified(v, schema) for v in value]
    if isinstance(value, tuple):
        return tuple(requalified(v, schema) for v in value)
    if isinstance(value, (set, frozenset)):
        return type(value)(requalified(v, schema) for v in value)
    if isinstance(value, dict):
        return {requalified(k, schema): requalified(v, schema) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: requalified(getattr(value, f.name), schema)
                   for f in dataclasses.fields(value) if f.init}
        return dataclasses.replace(value, **changes)
    if isinstance(value, BaseModel):
        return value.model_copy(update={f: requalified(getattr(value, f), schema)
                                        for f in type(value).model_fields})
    return value


def retarget_suite(suite: Any, migration: Any) -> Any:
    """A suite loaded for a tenant's copy validates the tenant's table."""
    tenant = getattr(migration, "tenant", None)
    if tenant is None or tenant.schema is None:
        return suite
    return dataclasses.replace(suite, table=requalified(suite.table, tenant.schema))


# -- the fan-out on the engine -----------------------------------------------------------------
APPLIED, ROLLED_BACK, ROLLBACK_FAILED, UNTOUCHED = (
    "applied", "validation failed, rolled back", "validation failed, rollback failed", "untouched")


@dataclass
class TenantOutcome:
    tenant: str
    outcome: str
    message: str = ""


@dataclass
class FanOut:
    migration: str
    outcomes: list[TenantOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[TenantOutcome]:
        return [o for o in self.outcomes if o.outcome in (ROLLED_BACK, ROLLBACK_FAILED)]

    @property
    def exit_code(self) -> int:
        if any(o.outcome == ROLLBACK_FAILED for o in self.outcomes):
            return 4
        return ValidationFailedError.exit_code if self.failed else 0

    def message(self) -> str:
        if not self.failed:
            return f"{self.migration}: applied on {len(self.outcomes)} tenants"
        return "; ".join(f"{self.migration}: tenant {o.tenant}: {o.outcome}: {o.message}"
                         for o in self.failed) + (
            f"; the other tenants are applied "
            f"({', '.join(o.tenant for o in self.outcomes if o.outcome == APPLIED) or 'none'})")


def run_up(migration: Any, database_url: str, wanted: Iterable[str] | None = None,
           log: Log = lambda _m: None, with_suites: bool = True, complete: bool = True) -> FanOut:
    """Every step of every selected tenant (without `complete`, up to validation: expanded); a
    tenant whose validation fails is rolled back."""
    from .engine import MigrationEngine
    from .steps import DOWN_ORDER, STEPS

    result = FanOut(migration.name)
    for tenant in select(resolve(migration, database_url), wanted, str(migration.file)):
        copy_ = for_tenant(migration, tenant)
        engine = MigrationEngine(copy_, tenant_url(tenant, database_url, str(migration.file)),
                                 log=log, extra_checks=_suites(copy_) if with_suites else None)
        try:
            for step in STEPS if complete else STEPS[:-1]:
                engine.up(step)
            result.outcomes.append(TenantOutcome(tenant.name, APPLIED))
        except ValidationFailedError as exc:
            log(f"{copy_.name}: validation failed; rolling back tenant {tenant.name} alone")
            try:
                for step in DOWN_ORDER:
                    engine.down(step)
            except MigrationError as undo:
                result.outcomes.append(TenantOutcome(tenant.name, ROLLBACK_FAILED,
                                                     f"{exc.one_line()}; {undo.one_line()}"))
                continue
            result.outcomes.append(TenantOutcome(tenant.name, ROLLED_BACK, exc.one_line()))
    return result


def run_down(migration: Any, database_url: str, wanted: Iterable[str] | None = None,
             log: Log = lambda _m: None) -> list[str]:
    from .engine import MigrationEngine
    from .steps import DOWN_ORDER

    done = []
    for tenant in select(resolve(migration, database_url), wanted, str(migration.file)):
        copy_ = for_tenant(migration, tenant)
        engine = MigrationEngine(copy_, tenant_url(tenant, database_url, str(migration.file)), log=log)
        for step in DOWN_ORDER:
            engine.down(step)
        done.append(tenant.name)
    return done


def status(migration: Any, database_url: str, wanted: Iterable[str] | None = None) -> list[tuple[str, Any]]:
    """(tenant, MigrationStatus) per tenant."""
    from .engine import MigrationEngine

    out = []
    for tenant in select(resolve(migration, database_url), wanted, str(migration.file)):
        copy_ = for_tenant(migration, tenant)
        engine = MigrationEngine(copy_, tenant_url(tenant, database_url, str(migration.file)))
        out.append((tenant.name, engine.status()))
    return out


def status_line(tenant: str, st: Any) -> str:
    """`tenant_a  complete (5/5 steps; partitions 1/1, 300 rows)`: the state as `status` says it
    (not applied | in progress | expanded | complete)."""
    from .steps import STEPS

    applied = [s for s in STEPS if st.steps[s].applied]
    started = [s for s in STEPS if st.steps[s].started]
    state = getattr(st, "state", None) or ("complete" if len(applied) == len(STEPS) else "")
    if started:
        state += f", started: {', '.join(started)}"
    b = st.backfill
    return (f"{tenant}  {state} ({len(applied)}/{len(STEPS)} steps; partitions "
            f"{b.partitions_done}/{b.partitions_total}, {b.rows_done} rows)")


def _suites(migration: Any):
    if not migration.validation.suites:
        return None
    from .suites import suite_checks

    return suite_checks
