"""migration-dags: list, plan, up, down and status of the migrations in a folder.

    migration-dags [--database-url URL] [--migrations-dir DIR] [--actor NAME] COMMAND ...
      list                 the migrations, in dependency order (no database needed)
      plan NAME            the SQL of every step; changes nothing
      up NAME [--complete] expand: the steps up to validation not applied yet, each as a run in
                           the Dagster instance; both shapes then work (the new one in the
                           version schema <schema>_NAME); --complete contracts too
      complete NAME        contract (cutover) once no old-shape write was seen for
                           --quiet-seconds (300); --force contracts anyway (audited)
      down NAME            run NAME's rollback job (down steps in reverse, ending with the proof)
      status NAME [--json] steps applied, backfill partitions done, rows
      restore NAME         after a failed rollback proof: put back what the migration changed
      audit [NAME] [--since ISO-DATE] [--json]   who ran what and when, from the run history
      lint [NAME...]       squawk on the SQL of every step (no database needed)
      verify [NAME...]     on a scratch clone: up, validation, down, exact fingerprint, up again,
                           and squawk; exit 0 only if all hold (the check CI runs on every PR)
      ui                   the Dagster UI on the same instance (DAGSTER_HOME) the CLI runs use
      embedded status|stop the embedded PostgreSQL used when no database URL is configured

Every command takes --quiet (no progress lines) and --json (the result as JSON on stdout);
colours only on a terminal (and never with NO_COLOR set).

The global options may come before or after the command; given in both places, the one after wins.

`up` and `down` go through the Dagster instance at DAGSTER_HOME, so they appear in the UI's run
history; `plan`, `status` and `list` read the database directly and do not import Dagster.

Exit codes: 0 success; a MigrationError's own code (2 malformed file, unknown migration,
unreadable database URL or a file changed since it was applied, 3 validation failed and rolled
back, 4 rollback failed, 5 database unreachable or the connection lost mid-run (`up` resumes;
--retry-on-disconnect N does it by itself), 6 another run holds the lock, 7 lock timeout,
8 a backfill batch failed on the data, 10 `complete` refused: writes in the old shape were
seen within the quiet period); 9 verify or lint found problems;
2 a command line click cannot parse;
130 interrupted; 1 anything else. Errors are one line on stderr; --debug adds the traceback.

A command is one function under `@command(name, help, *params)`: it gets the merged
GlobalOptions and its own parameters, and returns the exit code.
"""

from __future__ import annotations

import json
import os
import atexit
import sys
import threading
import time
import traceback
from typing import Sequence

import click
import psycopg

from . import cli_tenants, output, settings
from .cli_parsing import GlobalOptions, Invocation, build_group, migration_name
from .engine import MigrationEngine
from .db import is_connection_lost
from .errors import DatabaseUnavailableError, LockTimeoutExhaustedError, MigrationError
from .migration_set import MigrationSet
from .spec import Migration
from .steps import STEPS
from .target_database import database_url_for

PROG = "migration-dags"
INTERRUPTED = 130
FOUND_PROBLEMS = 9  # verify or lint: the migration is not proven safe

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
    except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected) as exc:
        # a statement outside the runner's retries met the application's locks: its
        # transaction rolled back, so the command can simply run again
        _debug_traceback(invocation)
        _error(f"a statement gave way to another session's locks ({' '.join(str(exc).split())}); "
               "its transaction was rolled back: run the same command again")
        return LockTimeoutExhaustedError.exit_code
    except psycopg.OperationalError as exc:
        if not is_connection_lost(exc):
            return _unexpected(invocation, exc)
        # lost outside any step (a status read between two steps): nothing is half done
        _debug_traceback(invocation)
        _error(f"the connection to the database was lost ({' '.join(str(exc).split())}); "
               "once the server is back, run the same command again: `up` resumes where it "
               "stopped")
        return DatabaseUnavailableError.exit_code
    except KeyboardInterrupt:
        _error("interrupted; a step that was running has undone its own partial work or will "
               "resume where it stopped")
        return INTERRUPTED
    except Exception as exc:  # a bug or an unforeseen failure: one line, traceback on request
        return _unexpected(invocation, exc)


def _unexpected(invocation: Invocation, exc: Exception) -> int:
    _debug_traceback(invocation)
    detail = " ".join(str(exc).split()) or "no message"
    _error(f"unexpected {type(exc).__name__}: {detail} (rerun with --debug for the traceback)")
    return 1


# -- commands --------------------------------------------------------------------------------------
@command("list", "list the migrations in dependency order")
def cmd_list(options: GlobalOptions) -> int:
    migrations = _migration_set(options).ordered()
    if options.json:
        output.print_json([{"name": m.name, "operations": len(m.operations),
                            "depends_on": list(m.depends_on), "description": m.description}
                           for m in migrations])
        return 0
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
    if options.json:
        output.print_json({step: plan.get(step) or [] for step in STEPS})
        return 0
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


def retry_on_disconnect() -> click.Option:
    return click.option(
        "--retry-on-disconnect", "retries", type=click.IntRange(min=0), default=0, metavar="N",
        help="when the connection to the database is lost (a server restart), reconnect and "
        "carry on by itself, up to N times, waiting up to a minute each time")


def _reconnecting(run, retries: int):
    """`run()`, again after a lost connection or an unreachable server, up to `retries` times:
    every step resumes or undoes its own partial work, so running again is how to carry on."""
    attempt = 0
    while True:
        try:
            return run()
        except (DatabaseUnavailableError, psycopg.OperationalError) as exc:
            lost = isinstance(exc, DatabaseUnavailableError) or is_connection_lost(exc)
            if not lost or attempt >= retries:
                raise
            attempt += 1
            wait = min(RETRY_WAIT_S * 2.0 ** (attempt - 1), 60.0)
            detail = exc.one_line() if isinstance(exc, MigrationError) else " ".join(str(exc).split())
            _progress(f"{detail}; reconnecting: retry {attempt} of {retries} in {wait:.1f} s")
            time.sleep(wait)


RETRY_WAIT_S = 1.0


ALLOW_CHANGED = click.option(
    "--allow-changed", is_flag=True,
    help="go on although the migration file changed since it was applied (the runs record it)")


@command("up", "expand: every step up to validation not applied yet, each as a Dagster run; "
         "both shapes then work until `complete`", migration_name(),
         retry_on_disconnect(), ALLOW_CHANGED,
         click.option("--complete", "complete", is_flag=True,
                      help="contract too (cutover), for a database no application writes to"),
         cli_tenants.TENANT_OPTION)
def cmd_up(options: GlobalOptions, name: str, retries: int, allow_changed: bool,
           complete: bool, tenants: tuple[str, ...]) -> int:
    launch = _launch_module(options)
    if cli_tenants.has_tenants(_migration(options, name), tenants):  # tenant by tenant
        code, message = cli_tenants.up(name, tenants, options.json, _progress, dict(
            _launch_options(options), allow_changed=allow_changed, complete=complete))
        if code:
            _error(message)
        return code
    result = _reconnecting(
        lambda: launch.run_up(name, complete=complete, allow_changed=allow_changed,
                              **_launch_options(options)),
        retries)
    return _report_up(options, name, result, "applied" if complete else "expanded")


@command("complete", "contract an expanded migration (cutover), once no write in the old shape "
         "was seen for the quiet period", migration_name(), ALLOW_CHANGED,
         click.option("--quiet-seconds", type=click.FloatRange(min=0), default=None,
                      metavar="S", help="how long no write in the old shape must have been seen "
                      "(default 300)"),
         click.option("--force", is_flag=True, help="contract although old-shape writes were "
                      "seen within the quiet period (the run records it)"),
         cli_tenants.TENANT_OPTION)
def cmd_complete(options: GlobalOptions, name: str, allow_changed: bool,
                 quiet_seconds: float | None, force: bool, tenants: tuple[str, ...]) -> int:
    launch = _launch_module(options)
    if cli_tenants.has_tenants(_migration(options, name), tenants):  # tenant by tenant
        code, message = cli_tenants.complete(name, tenants, options.json, _progress, dict(
            _launch_options(options), allow_changed=allow_changed),
            quiet_seconds=quiet_seconds, force=force)
        if code:
            _error(message)
        return code
    result = launch.run_complete(name, quiet_seconds=quiet_seconds, force=force,
                                 allow_changed=allow_changed, **_launch_options(options))
    return _report_up(options, name, result, "complete")


def _report_up(options: GlobalOptions, name: str, result, done: str) -> int:
    if options.json:
        output.print_json({"migration": name, "outcome": result.outcome.value, "state": done
                           if not result.exit_code else None,
                           "message": result.message, "dagster_home": os.environ["DAGSTER_HOME"],
                           "runs": [vars(r) for r in result.runs]})
    if result.exit_code:
        _error(result.message)
        return result.exit_code
    if result.runs:
        runs = len({r.run_id for r in result.runs})
        _progress(f"{name}: {done} ({runs} run{'s' * (runs > 1)} in the Dagster instance at "
                  f"{os.environ['DAGSTER_HOME']})")
    if done == "expanded":
        _progress(_expanded_hint(options, name))
    return 0


def _expanded_hint(options: GlobalOptions, name: str) -> str:
    status = _engine(options, name).status()
    if status.state != "expanded":
        return f"{name}: {status.state}"
    schemas = ", ".join(status.version_schemas) or "(none)"
    return (f"{name}: expanded: the old shape is in the tables, the new one in {schemas}; a new "
            f"release sets search_path = {schemas}, public. Once it runs everywhere: "
            f"migration-dags complete {name}")


@command("down", "roll back: the down steps in reverse, ending with the backup proof",
         migration_name(), retry_on_disconnect(), ALLOW_CHANGED, cli_tenants.TENANT_OPTION)
def cmd_down(options: GlobalOptions, name: str, retries: int, allow_changed: bool,
             tenants: tuple[str, ...]) -> int:
    launch = _launch_module(options)
    if cli_tenants.has_tenants(_migration(options, name), tenants):  # tenant by tenant
        return cli_tenants.down(name, tenants, _progress,
                                dict(_launch_options(options), allow_changed=allow_changed))
    result = _reconnecting(
        lambda: launch.run_down(name, allow_changed=allow_changed, **_launch_options(options)),
        retries)
    if options.json:
        output.print_json({"migration": name, "run_id": result.run_id,
                           "steps": [vars(r) for r in result.steps]})
    if result.run_id:
        _progress(f"{name}: rolled back; the tables equal their pre-migration backup "
                  f"(run {result.run_id})")
    return 0


@command("restore", "after a rollback whose proof failed (exit 4): put back the rows the "
         "migration changed that the application did not write (a run in the run history)",
         migration_name(), ALLOW_CHANGED,
         click.option("--discard-application-writes", is_flag=True,
                      help="put the backed-up rows back exactly, losing every write the "
                           "application made to those tables since the backup (audited)"))
def cmd_restore(options: GlobalOptions, name: str, allow_changed: bool,
                discard_application_writes: bool) -> int:
    discard = discard_application_writes
    launch = _launch_module(options)
    run = launch.run_restore(name, restore_options={"discard_application_writes": discard},
                             allow_changed=allow_changed, **_launch_options(options))
    rows = run.metadata.get("rows_affected", 0)
    conflicts = run.metadata.get("conflicts") or {}
    if discard:
        _progress(f"{name}: restored {rows} rows from the backup, DISCARDING every "
                  "application write since the backup (--discard-application-writes)")
    else:
        _progress(f"{name}: restored {rows} rows the migration changed and the "
                  "application did not write; every application write is kept")
        for table, c in conflicts.items():
            _progress(f"  conflict: {c['rows']} rows of {table} both the migration and the "
                      f"application changed, left as the application wrote them (keys "
                      f"{', '.join(c['keys'])})")
    if options.json:
        output.print_json({"migration": name, "run_id": run.run_id, "restored_rows": rows,
                           "conflicts": conflicts, "discarded_application_writes": discard})
    _progress(f"{name}: the rollback proof passed; the backup is dropped (run {run.run_id[:8]})")
    return 0


@command("status", "steps applied, backfill partitions done, rows (a line per tenant)",
         migration_name(), cli_tenants.TENANT_OPTION)
def cmd_status(options: GlobalOptions, name: str, tenants: tuple[str, ...]) -> int:
    migration = _migration(options, name)
    if cli_tenants.has_tenants(migration, tenants):
        return cli_tenants.status(migration, database_url_for(migration, options.database_url),
                                  tenants, options.json)
    status = _engine(options, name).status()
    if options.json:
        print(json.dumps(status.as_dict(), indent=2, sort_keys=True))
        return 0
    backfill = status.backfill
    since = f" since {status.state_since}" if status.state_since else ""
    print(f"{status.migration}: {status.state}{since}")
    if status.version_schemas:
        print(f"  new shape in   {', '.join(status.version_schemas)} "
              f"(search_path = {', '.join(status.version_schemas)}, public)")
    seen = status.old_shape_writes
    if seen is not None and status.state in ("expanded", "in progress"):
        print(f"  old-shape writes {seen['count']}"
              + (f", the last at {seen['last_at']} ({seen['age_s']} s ago)" if seen["last_at"] else ""))
    for step in STEPS:
        info = status.steps[step]
        line = f"  {step:<14} " + (
            f"applied {info.applied_at} (run {info.run_id})" if info.applied
            else "not applied; started by a run that stopped inside it (up resumes it, down "
                 "undoes it)" if info.started else "not applied"
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
                      help="only runs created since then (UTC unless it names a zone)"))
def cmd_audit(options: GlobalOptions, name: str | None, since: str | None) -> int:
    from .orchestration.audit import print_audit  # imports Dagster

    return print_audit(name, since=since, as_json=options.json)


def _names(options: GlobalOptions, names: Sequence[str]) -> list[Migration]:
    """The named migrations, or all of them in dependency order."""
    migrations = _migration_set(options)
    return [migrations.get(n) for n in names] if names else migrations.ordered()


@command("lint", "run squawk on the SQL of every step, up and down (no database needed); our "
         "operations' known-safe patterns are not flagged, a raw_sql's SQL is",
         click.argument("names", nargs=-1, metavar="[NAME]..."),
         click.option("--exclude", "exclude", multiple=True, metavar="RULE",
                      help="a squawk rule your team accepts (repeatable)"),
         click.option("--show-suppressed", is_flag=True,
                      help="also list our known-safe findings, with the reason"))
def cmd_lint(options: GlobalOptions, names: tuple[str, ...], exclude: tuple[str, ...],
             show_suppressed: bool) -> int:
    from .lint import lint_migration

    findings = [f for m in _names(options, names) for f in lint_migration(m)
                if f.rule not in exclude]
    problems = [f for f in findings if f.suppressed is None]
    shown = findings if show_suppressed else problems
    if options.json:
        output.print_json({"passed": not problems, "findings": [f.as_dict() for f in shown]})
    elif shown:
        print(output.table(
            ["migration", "step", "operation", "rule", "finding"],
            [[f.migration, f"{f.step} {f.direction}", f.operation,
              f.rule if f.suppressed is None else f"({f.rule})",
              f.message if f.suppressed is None else f"known safe: {f.suppressed}"] for f in shown]))
    if not problems:
        _progress("lint: no findings")
        return 0
    _progress(f"lint: {len(problems)} finding(s)")
    return FOUND_PROBLEMS


@command("verify", "on a scratch clone of the target: up, validation, down, exact fingerprint, "
         "up again, and squawk on every step; exit 0 only if all hold (run it in CI)",
         click.argument("names", nargs=-1, metavar="[NAME]..."),
         click.option("--sample-rows", type=click.IntRange(min=1), metavar="N",
                      help="clone N rows per table (plus the rows they reference) instead of all"),
         click.option("--exclude", "exclude", multiple=True, metavar="RULE",
                      help="a squawk rule your team accepts (repeatable)"))
def cmd_verify(options: GlobalOptions, names: tuple[str, ...], sample_rows: int | None,
               exclude: tuple[str, ...]) -> int:
    from .verify import PASS, verify

    report = verify(_names(options, names),
                    lambda m: database_url_for(m, options.database_url),
                    sample_rows=sample_rows, exclude_rules=tuple(exclude), progress=_progress)
    if options.json:
        output.print_json(report.as_dict())
    else:
        print(output.table(["migration", "check", "result", "detail"],
                           [[c.migration, c.check, c.result, c.detail] for c in report.checks],
                           colours={PASS: "green", "FAIL": "red"}))
    return 0 if report.passed else FOUND_PROBLEMS


@command("ui", "the Dagster UI (dagster dev) on the same instance, DAGSTER_HOME, that the CLI's "
         "runs are in, against the same database",
         click.option("--port", type=int, default=3000, show_default=True),
         click.option("--host", default="127.0.0.1", show_default=True))
def cmd_ui(options: GlobalOptions, port: int, host: str) -> int:
    from pathlib import Path

    root = settings.project_root()
    env = dict(os.environ)
    env["DAGSTER_HOME"] = str(settings.dagster_home().resolve())
    if options.database_url:
        env[settings.DATABASE_URL_ENV] = options.database_url
    env[settings.MIGRATIONS_DIR_ENV] = str(settings.migrations_dir(options.migrations_dir).resolve())
    # Dagster's notices about its own API, not the user's doing: `dagster dev` is superseded by
    # `dg dev` (not installed), and its own @sensor passes a beta parameter (pyproject's pytest
    # filter says the same)
    env["PYTHONWARNINGS"] = ",".join(filter(None, [
        env.get("PYTHONWARNINGS"), "ignore:Function `dev_command` is superseded",
        "ignore:Parameter `owners`"]))
    dagster = Path(sys.executable).parent / "dagster"
    argv = [str(dagster) if dagster.exists() else "dagster", "dev", "-w",
            str(root / "workspace.yaml"), "--host", host, "--port", str(port)]
    _progress(f"Dagster UI on http://{host}:{port} (instance {env['DAGSTER_HOME']}); Ctrl-C stops it")
    os.chdir(root)
    os.execvpe(argv[0], argv, env)
    return 0  # not reached


@command("embedded", "the embedded PostgreSQL (used when no database URL is configured): "
         "status, or stop it",
         click.argument("action", type=click.Choice(["status", "stop"])))
def cmd_embedded(options: GlobalOptions, action: str) -> int:
    from .embedded import embedded_status, stop_embedded

    status = embedded_status()
    if action == "stop":
        stopped = stop_embedded(status.folder) if status.running else False
        after = embedded_status(status.folder)
        if options.json:
            output.print_json({**after.as_dict(), "stopped": stopped})
        elif not options.quiet:
            print(f"embedded PostgreSQL in {status.folder}: "
                  f"{'stopped' if stopped else 'was not running'}")
        return 0 if not after.running else 1
    if options.json:
        output.print_json(status.as_dict())
    else:
        print(f"embedded PostgreSQL in {status.folder}: "
              + (f"running (pid {status.pid}); stop it: migration-dags embedded stop"
                 if status.running else "not running"))
    return 0


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
    our progress lines go to stderr, Dagster's full logs to the run history. --quiet and --json
    also turn the backfill's progress bar off (settings.PROGRESS_ENV, read in this process)."""
    if options.quiet or options.json:
        os.environ[settings.PROGRESS_ENV] = "off"
    from .orchestration import launch

    launch.quiet_console(verbose=options.verbose)
    return launch


def _launch_options(options: GlobalOptions) -> dict:
    return dict(
        migrations_dir=options.migrations_dir, database_url=options.database_url,
        actor=options.actor, progress=_progress, verbose=options.verbose,
    )


def _progress(line: str) -> None:
    """A progress line on stderr, unless the command runs with --quiet."""
    ctx = click.get_current_context(silent=True)
    invocation = ctx.find_object(Invocation) if ctx else None
    if invocation is not None and invocation.options.quiet:
        return
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


def run() -> None:
    """The `migration-dags` command: main(), then exit without tearing the interpreter down.
    Python's teardown of the modules Dagster and Great Expectations load took 0.8-0.9 s of every
    command (bench/backfill_bench.py's fixed cost) and does nothing a finished command needs:
    the exit handlers still run and the output is flushed first.  Tests call main()."""
    code = main()
    code = 0 if code is None else code if isinstance(code, int) else 1
    for thread in threading.enumerate():  # what the interpreter waits for before its exit
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more to say
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
