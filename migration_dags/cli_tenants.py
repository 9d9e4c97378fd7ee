"""The CLI's commands for a migration that declares `tenants:` (tenants.py): up, down and status
tenant by tenant, and `--tenant NAME` (repeatable) to run some of them only, as a canary.

cli.py hands over here when the migration has tenants or --tenant is given; the exit code is the
worst tenant's (3: a tenant's validation failed and that tenant alone was rolled back).
"""

from __future__ import annotations

import json
from typing import Callable, Sequence

import click

from . import output
from .errors import SpecError

TENANT_OPTION = click.option(
    "--tenant", "tenants", multiple=True, metavar="NAME",
    help="a multi-tenant migration: only this tenant (repeatable), e.g. a canary run on one")


def has_tenants(migration, wanted: Sequence[str]) -> bool:
    """Whether the command goes tenant by tenant; --tenant on a migration without tenants is an
    error naming the file."""
    if migration.tenants is None and wanted:
        raise SpecError(str(migration.file), "tenants",
                        f"--tenant given, but migration {migration.name} declares no tenants")
    return migration.tenants is not None


def up(name: str, wanted: Sequence[str], as_json: bool, progress: Callable[[str], None],
       launch_options: dict) -> tuple[int, str]:
    from .orchestration import tenants

    result = tenants.run_up(name, wanted, **launch_options)
    return _report(name, result, as_json, progress)


def _report(name: str, result, as_json: bool, progress: Callable[[str], None]) -> tuple[int, str]:
    for tenant, r in result.results:
        progress(f"{name}: tenant {tenant}: {r.outcome.value}")
    if as_json:
        output.print_json({"migration": name, "tenants": [
            {"tenant": t, "outcome": r.outcome.value, "message": r.message,
             "runs": [vars(x) for x in r.runs]} for t, r in result.results]})
    return result.exit_code, result.message if result.exit_code else ""


def complete(name: str, wanted: Sequence[str], as_json: bool, progress: Callable[[str], None],
             launch_options: dict, **complete_options) -> tuple[int, str]:
    from .orchestration import tenants

    result = tenants.run_complete(name, wanted, complete_options, **launch_options)
    return _report(name, result, as_json, progress)


def down(name: str, wanted: Sequence[str], progress: Callable[[str], None],
         launch_options: dict) -> int:
    from .orchestration import tenants

    for tenant in tenants.run_down(name, wanted, **launch_options):
        progress(f"{name}: tenant {tenant}: rolled back")
    return 0


def status(migration, database_url: str, wanted: Sequence[str], as_json: bool) -> int:
    from . import tenants

    found = tenants.status(migration, database_url, wanted)
    if as_json:
        print(json.dumps({"migration": migration.name, "tenants": {
            t: st.as_dict() for t, st in found}}, indent=2, sort_keys=True))
        return 0
    print(migration.name)
    for tenant, st in found:
        print("  " + tenants.status_line(tenant, st))
    return 0
