"""migration-dags: list, plan, up, down and status of the migrations in a folder.

    migration-dags [--database-url URL] [--migrations-dir DIR] [--actor NAME] COMMAND ...
      list                 the migrations, in dependency order (no database needed)
      plan NAME            the SQL of every step; changes nothing
      up NAME              run the steps not applied yet, each as a run in the Dagster instance
      down NAME            run NAME's rollback job (down steps in reverse, ending with the proof)
      status NAME [--json] steps applied, backfill partitions done, rows
      restore NAME         after a failed rollback proof: put back what the migration changed
      audit [NAME] [--since ISO-DATE] [--json]   who ran what and when, from the run history

`up` and `down` go through the Dagster instance at DAGSTER_HOME, so they appear in the UI's run
history; `plan`, `status` and `list` read the database directly and do not import Dagster.

Exit codes: 0 success; a MigrationError's own code (2 malformed file or unknown migration,
3 validation failed and rolled back, 4 rollback failed, 5 database unreachable, 6 another run holds
the lock, 7 lock timeout); 1 anything else. Errors are one line on stderr; --debug adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
import warnings
from typing import Callable, Sequence

from . import settings
from .engine import MigrationEngine
from .errors import MigrationError
from .migration_set import MigrationSet
from .target_database import database_url_for
from .spec import Migration
from .steps import STEPS

PROG = "migration-dags"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.command(args)
    except MigrationError as exc:
        _debug_traceback(args)
        _error(exc.one_line())
        return exc.exit_code
    except KeyboardInterrupt:
        _error("interrupted; a step that was running has undone its own partial work or will "
               "resume where it stopped")
        return 130
    except Exception as exc:  # a bug or an unforeseen failure: one line, traceback on request
        _debug_traceback(args)
        detail = " ".join(str(exc).split()) or "no message"
        _error(f"unexpected {type(exc).__name__}: {detail} (rerun with --debug for the traceback)")
        return 1


# -- commands --------------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    migrations = _migration_set(args).ordered()
    if not migrations:
        _progress(f"no migrations in {settings.migrations_dir(args.migrations_dir)}")
    for m in migrations:
        deps = f"  (after {', '.join(m.depends_on)})" if m.depends_on else ""
        summary = " ".join(m.description.split())
        print(f"{m.name}  {len(m.operations)} operations{deps}{'  ' + summary if summary else ''}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    plan = _engine(args).plan()
    for step in STEPS:
        print(f"-- ===== {step} =====")
        print("\n\n".join(plan.get(step) or ["-- nothing to do"]))
        print()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    status = _engine(args).status()
    if args.json:
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
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    launch = _launch_module(args)
    result = launch.run_up(args.name, **_launch_options(args))
    if result.exit_code:
        _error(result.message)
        return result.exit_code
    if result.runs:
        _progress(f"{args.name}: applied ({len(result.runs)} runs in the Dagster instance at "
                  f"{os.environ['DAGSTER_HOME']})")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    launch = _launch_module(args)
    result = launch.run_down(args.name, **_launch_options(args))
    if result.run_id:
        _progress(f"{args.name}: rolled back; the tables equal their pre-migration backup "
                  f"(run {result.run_id})")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    engine = _engine(args)
    discard = args.discard_application_writes
    report = engine.restore(discard_application_writes=discard)
    if discard:
        _progress(f"{args.name}: restored {report.rows} rows from the backup, DISCARDING every "
                  "application write since the backup (--discard-application-writes)")
    else:
        _progress(f"{args.name}: restored {report.rows} rows the migration changed and the "
                  "application did not write; every application write is kept")
        for table, c in report.extra.get("conflicts", {}).items():
            _progress(f"  conflict: {c['rows']} rows of {table} both the migration and the "
                      f"application changed, left as the application wrote them (keys "
                      f"{', '.join(c['keys'])})")
    _progress(f"{args.name}: the rollback proof passed; the backup is dropped")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from .orchestration.audit import print_audit  # imports Dagster

    return print_audit(args.name, since=args.since, as_json=args.json)


# -- helpers ---------------------------------------------------------------------------------------
def _migration_set(args: argparse.Namespace) -> MigrationSet:
    return MigrationSet.load(settings.migrations_dir(args.migrations_dir))


def _migration(args: argparse.Namespace) -> Migration:
    return _migration_set(args).get(args.name)


def _engine(args: argparse.Namespace) -> MigrationEngine:
    migration = _migration(args)
    return MigrationEngine(migration, database_url_for(migration, args.database_url))


def _launch_module(args: argparse.Namespace):
    """Import Dagster only for the commands that run steps, with its console output quiet:
    our progress lines go to stderr, Dagster's full logs to the run history."""
    import dagster as dg

    if not args.verbose:
        logging.getLogger("dagster").setLevel(logging.ERROR)
        # API-stability notices (beta, preview, superseded) are for the code's authors, not users
        for category in (dg.BetaWarning, dg.PreviewWarning, dg.SupersessionWarning):
            warnings.filterwarnings("ignore", category=category)
    from .orchestration import launch

    return launch


def _launch_options(args: argparse.Namespace) -> dict:
    return dict(
        migrations_dir=args.migrations_dir, database_url=args.database_url, actor=args.actor,
        progress=_progress, verbose=args.verbose,
    )


def _progress(line: str) -> None:
    print(f"{PROG}: {line}", file=sys.stderr, flush=True)


def _error(line: str) -> None:
    print(f"{PROG}: error: {' '.join(line.split())}", file=sys.stderr, flush=True)


def _debug_traceback(args: argparse.Namespace) -> None:
    if args.debug:
        traceback.print_exc(file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    # The global options are accepted before or after the command: each subparser repeats them
    # with SUPPRESS defaults, so a value given after the command is not reset by the main parser.
    def global_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
        d: Callable[[object], object] = (lambda v: v) if defaults else (lambda _v: argparse.SUPPRESS)
        parser.add_argument("--database-url", default=d(None), metavar="URL",
                            help=f"target database (env {settings.DATABASE_URL_ENV}; "
                                 "default: the embedded server)")
        parser.add_argument("--migrations-dir", default=d(None), metavar="DIR",
                            help=f"folder of migration files (env {settings.MIGRATIONS_DIR_ENV}; "
                                 "default ./assets)")
        parser.add_argument("--actor", default=d(None), metavar="NAME",
                            help="who runs this, for the runs' actor tag (default: CI user "
                                 "variables, else the OS user)")
        parser.add_argument("--debug", action="store_true", default=d(False),
                            help="print the traceback of an error")
        parser.add_argument("--verbose", "-v", action="store_true", default=d(False),
                            help="show Dagster's run logs on the console")

    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    global_options(parser, defaults=True)
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    def command(name: str, func, help_text: str, takes_name: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        global_options(sub, defaults=False)
        if takes_name:
            sub.add_argument("name", metavar="NAME", help="the migration's name (its file name)")
        sub.set_defaults(command=func)
        return sub

    command("list", cmd_list, "list the migrations in dependency order", takes_name=False)
    command("plan", cmd_plan, "print the SQL of every step; changes nothing")
    command("up", cmd_up, "run every step not applied yet, each as a Dagster run")
    command("down", cmd_down, "roll back: the down steps in reverse, ending with the backup proof")
    restore = command("restore", cmd_restore, "after a rollback whose proof failed (exit 4): put "
                      "back the rows the migration changed that the application did not write")
    restore.add_argument("--discard-application-writes", action="store_true",
                         help="put the backed-up rows back exactly, losing every write the "
                              "application made to those tables since the backup")
    status = command("status", cmd_status, "steps applied, backfill partitions done, rows")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    audit = command("audit", cmd_audit, "who ran which migration step and when, oldest first, "
                    "from Dagster's run history", takes_name=False)
    audit.add_argument("name", nargs="?", metavar="NAME", help="only this migration's runs")
    audit.add_argument("--since", metavar="ISO-DATE", help="only runs created since then (UTC "
                       "unless it names a zone)")
    audit.add_argument("--json", action="store_true", help="print a JSON list")
    return parser


if __name__ == "__main__":
    sys.exit(main())
