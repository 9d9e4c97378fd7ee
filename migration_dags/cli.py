"""migration-dags: list, plan, up, down and status of the migrations in a folder.

    migration-dags [--database-url URL] [--migrations-dir DIR] [--actor NAME] COMMAND ...
      list                 the migrations, in dependency order (no database needed)
      plan NAME            the SQL of every step; changes nothing
      up NAME              run the steps not applied yet, each as a run in the Dagster instance
      down NAME            run NAME's rollback job (down steps in reverse, ending with the proof)
      status NAME [--json] steps applied, backfill partitions done, rows
      restore NAME         after a failed rollback proof: put the backup's rows back exactly
      audit [NAME] [--since ISO-DATE] [--json]   who ran what and when, from the run history

The global options may come before or after the command; given in both places, the one after wins.

`up` and `down` go through the Dagster instance at DAGSTER_HOME, so they appear in the UI's run
history; `plan`, `status` and `list` read the database directly and do not import Dagster.

Exit codes: 0 success; a MigrationError's own code (2 malformed file, unknown migration,
unreadable database URL or a file changed since it was applied, 3 validation failed and rolled
back, 4 rollback failed, 5 database unreachable, 6 another run holds the lock, 7 lock timeout,
8 a backfill batch failed on the data); 2 a command line click cannot parse;
130 interrupted; 1 anything else. Errors are one line on stderr; --debug adds the traceback.

A command is one function under `@command(name, help, *params)`: it gets the merged
GlobalOptions and its own parameters, and returns the exit code.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Sequence

import click

from . import settings
from .cli_parsing import GlobalOptions, Invocation, build_group, migration_name
from .engine import MigrationEngine
from .errors import MigrationError
from .migration_set import MigrationSet
from .spec import Migration
from .steps import STEPS
from .target_database import database_url_for

PROG = "migration-dags"
INTERRUPTED = 130

cli, command = build_group(PROG, help_text=__doc__.split("\n\n")[0])


def main(argv: Sequence[str] | None = None) -> int:
    invocation = Invocation()
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        # What click's main(standalone_mode=False) does, minus its sys.exit on a broken pipe and
        # the Abort it makes of Ctrl-C: every outcome is one of the exit codes below.
        with cli.make_context(PROG, args, obj=invocation) as ctx:
            return cli.invoke(ctx)
    except click.exceptions.Exit as done:  # --help
        return done.exit_code
    except click.UsageError as exc:
        _usage_error(exc)
        return exc.exit_code
    except click.ClickException as exc:
        _error(exc.format_message())
        return exc.exit_code
    except MigrationError as exc:
        _debug_traceback(invocation)
        _error(exc.one_line())
        return exc.exit_code
    except KeyboardInterrupt:
        _error("interrupted; a step that was running has undone its own partial work or will "
               "resume where it stopped")
        return INTERRUPTED
    except Exception as exc:  # a bug or an unforeseen failure: one line, traceback on request
        _debug_traceback(invocation)
        detail = " ".join(str(exc).split()) or "no message"
        _error(f"unexpected {type(exc).__name__}: {detail} (rerun with --debug for the traceback)")
        return 1


# -- commands --------------------------------------------------------------------------------------
@command("list", "list the migrations in dependency order")
def cmd_list(options: GlobalOptions) -> int:
    migrations = _migration_set(options).ordered()
    if not migrations:
        _progress(f"no migrations in {settings.migrations_dir(options.migrations_dir)}")
    for m in migrations:
        deps = f"  (after {', '.join(m.depends_on)})" if m.depends_on else ""
        summary = " ".join(m.description.split())
        print(f"{m.name}  {len(m.operations)} operations{deps}{'  ' + summary if summary else ''}")
    return 0


@command("plan", "print the SQL of every step; changes nothing", migration_name(),
         click.option("--offline", is_flag=True, help="from the migration file alone, with no "
                      "database: placeholders where only the live catalog knows, and no check "
                      "against the live schema"))
def cmd_plan(options: GlobalOptions, name: str, offline: bool) -> int:
    if offline:
        plan = MigrationEngine(_migration(options, name), database_url="").plan(offline=True)
    else:
        plan = _engine(options, name).plan()
    if plan.get("notes"):
        print("-- ===== notes =====")
        print("\n".join(plan["notes"]))
        print()
    for step in STEPS:
        print(f"-- ===== {step} =====")
        print("\n\n".join(plan.get(step) or ["-- nothing to do"]))
        print()
    return 0


@command("schema", "print the JSON Schema of a migration file (editors validate assets/*.yaml "
         "with it; the shipped copy is migration_dags/spec/migration.schema.json)")
def cmd_schema(options: GlobalOptions) -> int:
    from .spec import migration_json_schema

    print(json.dumps(migration_json_schema(), indent=2))
    return 0


ALLOW_CHANGED = click.option(
    "--allow-changed", is_flag=True,
    help="go on although the migration file changed since it was applied (the runs record it)")


@command("up", "run every step not applied yet, each as a Dagster run", migration_name(),
         ALLOW_CHANGED)
def cmd_up(options: GlobalOptions, name: str, allow_changed: bool) -> int:
    launch = _launch_module(options)
    result = launch.run_up(name, allow_changed=allow_changed, **_launch_options(options))
    if result.exit_code:
        _error(result.message)
        return result.exit_code
    if result.runs:
        _progress(f"{name}: applied ({len(result.runs)} runs in the Dagster instance at "
                  f"{os.environ['DAGSTER_HOME']})")
    return 0


@command("down", "roll back: the down steps in reverse, ending with the backup proof",
         migration_name(), ALLOW_CHANGED)
def cmd_down(options: GlobalOptions, name: str, allow_changed: bool) -> int:
    launch = _launch_module(options)
    result = launch.run_down(name, allow_changed=allow_changed, **_launch_options(options))
    if result.run_id:
        _progress(f"{name}: rolled back; the tables equal their pre-migration backup "
                  f"(run {result.run_id})")
    return 0


@command("restore", "after a rollback whose proof failed (exit 4): put the backed-up rows back "
         "exactly, discarding writes made to those tables since the backup", migration_name(),
         ALLOW_CHANGED)
def cmd_restore(options: GlobalOptions, name: str, allow_changed: bool) -> int:
    launch = _launch_module(options)
    run = launch.run_restore(name, allow_changed=allow_changed, **_launch_options(options))
    _progress(f"{name}: restored {run.metadata.get('rows_affected', 0)} rows from the backup; the "
              f"tables equal their pre-migration backup, which is now dropped (run {run.run_id[:8]})")
    return 0


@command("status", "steps applied, backfill partitions done, rows", migration_name(),
         click.option("--json", "as_json", is_flag=True, help="print the status as JSON"))
def cmd_status(options: GlobalOptions, name: str, as_json: bool) -> int:
    status = _engine(options, name).status()
    if as_json:
        print(json.dumps(status.as_dict(), indent=2, sort_keys=True))
        return 0
    backfill = status.backfill
    print(status.migration)
    for step in STEPS:
        info = status.steps[step]
        line = f"  {step:<14} " + (
            f"applied {info.applied_at} (run {info.run_id})" if info.applied else "not applied"
        )
        if step == "backfill":
            line += (f"; partitions {backfill.partitions_done}/{backfill.partitions_total},"
                     f" {backfill.rows_done} rows")
        print(line)
    if status.file_changed:
        print(f"  file changed since applied: {status.file_changed}")
    return 0


@command("audit", "who ran which migration step and when, oldest first, from Dagster's run history",
         migration_name(required=False, description="only this migration's runs"),
         click.option("--since", metavar="ISO-DATE",
                      help="only runs created since then (UTC unless it names a zone)"),
         click.option("--json", "as_json", is_flag=True, help="print a JSON list"))
def cmd_audit(options: GlobalOptions, name: str | None, since: str | None, as_json: bool) -> int:
    from .orchestration.audit import print_audit  # imports Dagster

    return print_audit(name, since=since, as_json=as_json)


# -- helpers ---------------------------------------------------------------------------------------
def _migration_set(options: GlobalOptions) -> MigrationSet:
    return MigrationSet.load(settings.migrations_dir(options.migrations_dir))


def _migration(options: GlobalOptions, name: str) -> Migration:
    return _migration_set(options).get(name)


def _engine(options: GlobalOptions, name: str, allow_changed: bool = False) -> MigrationEngine:
    migration = _migration(options, name)
    return MigrationEngine(migration, database_url_for(migration, options.database_url),
                           allow_changed=allow_changed)


def _launch_module(options: GlobalOptions):
    """Import Dagster only for the commands that run steps, with its console output quiet:
    our progress lines go to stderr, Dagster's full logs to the run history."""
    from .orchestration import launch

    launch.quiet_console(verbose=options.verbose)
    return launch


def _launch_options(options: GlobalOptions) -> dict:
    return dict(
        migrations_dir=options.migrations_dir, database_url=options.database_url,
        actor=options.actor, progress=_progress, verbose=options.verbose,
    )


def _progress(line: str) -> None:
    print(f"{PROG}: {line}", file=sys.stderr, flush=True)


def _error(line: str, prog: str = PROG) -> None:
    print(f"{prog}: error: {' '.join(line.split())}", file=sys.stderr, flush=True)


def _usage_error(exc: click.UsageError) -> None:
    """Like argparse did: the usage of the command that was being parsed, then the one line."""
    if exc.ctx is not None:
        print(exc.ctx.get_usage(), file=sys.stderr)
    _error(exc.format_message(), prog=exc.ctx.command_path if exc.ctx else PROG)


def _debug_traceback(invocation: Invocation) -> None:
    if invocation.options.debug:
        traceback.print_exc(file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
