"""A multi-tenant migration's runs through Dagster: one Launcher (launch.py) per tenant.

Each tenant's copy of the migration (tenants.for_tenant: `<migration>__<tenant>`) is its own asset
group, with its own key-range partitions of the backfill, runs, checks and rollback job; every
run carries the tag `migration_dags/tenant`. `up` goes tenant by tenant: a tenant whose validation
fails is rolled back by its own rollback job (the Launcher does that, exit 3) and named, and the
next tenants still run; any other failure stops there (later tenants untouched).

`expand(migrations, url)` gives the per-tenant copies in place of a tenants migration, so the
UI's definitions show one group per tenant, never the file's own (whose tables are the template,
not a tenant's).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable

import dagster as dg

from .. import settings, tenants
from ..migration_set import MigrationSet
from ..spec import Migration
from ..target_database import database_url_for
from .launch import Launcher, UpOutcome, UpResult, telemetry_notice_first

TENANT_TAG = "migration_dags/tenant"


@dataclass
class TenantsUpResult:
    migration: str
    results: list[tuple[str, UpResult]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return max((r.exit_code for _t, r in self.results), default=0)

    @property
    def message(self) -> str:
        failed = [(t, r) for t, r in self.results if r.exit_code]
        applied = [t for t, r in self.results if not r.exit_code]
        return "; ".join(f"tenant {t}: {r.message}" for t, r in failed) + (
            f"; applied on the other tenants ({', '.join(applied) or 'none'})")


def _tenants_of(name: str, migrations_dir: Any, database_url: str | None, wanted: Iterable[str]):
    migration = MigrationSet.load(settings.migrations_dir(migrations_dir)).get(name)
    url = database_url_for(migration, database_url)
    chosen = tenants.select(tenants.resolve(migration, url), wanted, str(migration.file))
    return migration, url, chosen


def _launchers(name: str, wanted: Iterable[str], *, migrations_dir=None, database_url=None,
               actor=None, progress=lambda _l: None, verbose=False, allow_changed=False):
    migration, url, chosen = _tenants_of(name, migrations_dir, database_url, wanted)
    settings.dagster_home()
    telemetry_notice_first()
    with dg.DagsterInstance.get() as instance:
        for tenant in chosen:
            copy = tenants.for_tenant(migration, tenant)
            launcher = Launcher(copy, instance, tenants.tenant_url(tenant, url, str(migration.file)),
                                actor=actor, progress=progress, verbose=verbose,
                                allow_changed=allow_changed)
            launcher.tags[TENANT_TAG] = tenant.name
            yield tenant, launcher


def run_up(name: str, wanted: Iterable[str] = (), complete: bool = False,
           **options: Any) -> TenantsUpResult:
    """`up` (to expanded; with `complete`, cutover too) tenant by tenant."""
    return _each(name, wanted, lambda launcher: launcher.up(complete=complete), options)


def run_complete(name: str, wanted: Iterable[str] = (), complete_options: dict | None = None,
                 **options: Any) -> TenantsUpResult:
    """`complete` (cutover once the old shape's writes stopped) tenant by tenant."""
    return _each(name, wanted, lambda launcher: launcher.complete(**(complete_options or {})),
                 options)


def _each(name: str, wanted: Iterable[str], command, options: dict) -> TenantsUpResult:
    out = TenantsUpResult(name)
    progress = options.get("progress") or (lambda _l: None)
    for tenant, launcher in _launchers(name, wanted, **options):
        progress(f"{name}: tenant {tenant.name}")
        result = command(launcher)
        out.results.append((tenant.name, result))
        if result.outcome in (UpOutcome.VALIDATION_FAILED_ROLLED_BACK,
                              UpOutcome.VALIDATION_FAILED_ROLLBACK_FAILED):
            progress(f"{name}: tenant {tenant.name}: {result.message}")
    return out


def run_down(name: str, wanted: Iterable[str] = (), **options: Any) -> list[str]:
    done = []
    for tenant, launcher in _launchers(name, wanted, **options):
        launcher.down()
        done.append(tenant.name)
    return done


def status_lines(name: str, wanted: Iterable[str] = (), migrations_dir=None,
                 database_url: str | None = None) -> list[str]:
    migration, url, _chosen = _tenants_of(name, migrations_dir, database_url, wanted)
    return [tenants.status_line(t, st) for t, st in tenants.status(migration, url, wanted)]


def expand(migrations: list[Migration], database_url: str | None = None) -> list[Migration]:
    """Each tenants migration replaced by its tenants' copies (schemas resolved on the default
    database; one that cannot be resolved now is left out of the UI until it can)."""
    out: list[Migration] = []
    for migration in migrations:
        if migration.tenants is None:
            out.append(migration)
            continue
        explicit = database_url or os.environ.get(settings.DATABASE_URL_ENV)
        if migration.database_url_env is None and not explicit:
            continue  # never start the embedded server just to list schemas
        try:
            url = database_url_for(migration, explicit)
            out += [tenants.for_tenant(migration, t) for t in tenants.resolve(migration, url)]
        except Exception:  # the database does not answer: the groups appear once it does
            continue
    return out
