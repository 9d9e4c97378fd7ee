"""The audit log: who ran which migration step, when, and what it did, read back from Dagster's
run history. Nothing else is written: every step runs as a Dagster run (from the CLI, the UI, an
asset backfill, the rollback sensor), so the instance at DAGSTER_HOME *is* the log, in SQLite by
default or in PostgreSQL with deploy/dagster.yaml.

    migration-dags audit [NAME] [--since ISO-DATE] [--json]

One entry per run, oldest first:

    run_id, job, migration, step, direction, actor, source, code_version, status, created_at,
    started_at, ended_at   from the run and its tags (run_tags.py; Dagster's own for UI runs)
    steps     per step: the SQL it ran and rows touched, from materialization metadata (up) or
              the rollback job's observations (down)
    checks    every asset check evaluated; a failed one lists each failed outcome with its
              observed value and sample keys of offending rows
    rollback  for a rollback run: reason, failed checks or step, the run that triggered it
    error     the first error of a failed run, one line

Runs of other jobs in the same instance are left out. A UI run gets our tags when its first step
starts (tagging.py); one that failed before that has none, so its migration is read from its asset
selection or the assets it materialized.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any, Iterable

import dagster as dg
from dagster._core.storage.tags import (  # Dagster's own tags, not re-exported by `dagster`
    BACKFILL_ID_TAG,
    SCHEDULE_NAME_TAG,
    SENSOR_NAME_TAG,
    USER_TAG,
)

from ..errors import MigrationError
from ..steps import STEPS

RANGES_STEP = "backfill_ranges"  # tagging.RANGES_STEP: the key-range asset
ROLLBACK_SUFFIX = "__rollback"
APPLIED_CHECK = "applied"  # checks.APPLIED: the step is applied in the database  # jobs.rollback_job_name; jobs.py is not imported to keep this light
ROLLBACK_TAGS = ("reason", "failed_checks", "failed_step", "triggered_by_run")
_SQL_FENCE = re.compile(r"^```sql\n(.*)\n```$", re.S)


class AuditInputError(MigrationError):
    exit_code = 2


def parse_since(text: str | None) -> datetime | None:
    """An ISO date or date-time; without a zone it is UTC."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise AuditInputError(
            f"--since: {text!r} is not an ISO date or date-time (e.g. 2026-11-26 or 2026-11-26T14:00Z)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


# -- which migrations a run belongs to ---------------------------------------------------------
def migration_step_of_key(key: dg.AssetKey) -> tuple[str, str] | None:
    """(migration, step) for a migration step's asset key [migration, step], else None."""
    path = key.path
    if len(path) == 2 and path[1] == RANGES_STEP:  # the key ranges are the backfill step's
        return (path[0], "backfill")
    return (path[0], path[1]) if len(path) == 2 and path[1] in STEPS else None


def migrations_of_run(run: dg.DagsterRun) -> list[str]:
    """The migrations a run worked on, from its tags, its job name or its asset selection."""
    if run.tags.get("migration"):
        return [run.tags["migration"]]
    if run.job_name.endswith(ROLLBACK_SUFFIX):
        return [run.job_name[: -len(ROLLBACK_SUFFIX)]]
    found = {ms[0] for key in run.asset_selection or () if (ms := migration_step_of_key(key))}
    return sorted(found)


# -- the log -----------------------------------------------------------------------------------
def audit_log(
    instance: dg.DagsterInstance, migration: str | None = None, since: datetime | None = None
) -> list[dict[str, Any]]:
    records = instance.get_run_records(dg.RunsFilter(created_after=since), ascending=True)
    entries = []
    for record in sorted(records, key=lambda r: r.create_timestamp):
        run = record.dagster_run
        events = _RunEvents(instance, run.run_id)
        migrations = migrations_of_run(run) or events.migrations()
        if not migrations or (migration and migration not in migrations):
            continue
        entries.append(_entry(record, migrations, events))
    return entries


def _entry(record: dg.RunRecord, migrations: list[str], events: "_RunEvents") -> dict[str, Any]:
    run, tags = record.dagster_run, record.dagster_run.tags
    rollback = run.job_name.endswith(ROLLBACK_SUFFIX)
    steps = events.steps()
    return {
        "run_id": run.run_id,
        "job": run.job_name,
        "migration": ",".join(migrations),
        "step": tags.get("step") or ",".join(s["step"] for s in steps) or None,
        "direction": tags.get("direction") or ("down" if rollback else "up"),
        "actor": _actor(tags),
        "source": _source(tags),
        "code_version": tags.get("code_version"),
        # CLI runs carry them as tags; UI runs' steps record them in their metadata
        "target_database": _target(tags) or _first(steps, "target_database"),
        "file_checksum": tags.get("file_checksum") or _first(steps, "file_checksum"),
        "allow_changed": tags.get("allow_changed") == "true",
        # a complete that contracted although old-shape writes were seen (expand/)
        "force_complete": tags.get("force_complete") == "true",
        "quiet_seconds": tags.get("quiet_seconds"),
        "status": run.status.value,
        "created_at": _iso(record.create_timestamp),
        "started_at": _iso(record.start_time),
        "ended_at": _iso(record.end_time),
        "steps": steps,
        "checks": events.checks(),
        "rollback": {k: tags.get(k) for k in ROLLBACK_TAGS} if rollback else None,
        "error": events.error() if run.status == dg.DagsterRunStatus.FAILURE else None,
    }


def _target(tags: dict[str, str]) -> str | None:
    if not tags.get("target_database"):
        return None
    return f"{tags.get('target_host')}:{tags.get('target_port')}/{tags['target_database']}"


def _first(steps: list[dict[str, Any]], key: str) -> Any:
    return next((s[key] for s in steps if s.get(key)), None)


def _actor(tags: dict[str, str]) -> str | None:
    if tags.get("actor") or tags.get(USER_TAG):
        return tags.get("actor") or tags[USER_TAG]
    if tags.get(SENSOR_NAME_TAG):
        return f"sensor:{tags[SENSOR_NAME_TAG]}"
    if tags.get(SCHEDULE_NAME_TAG):
        return f"schedule:{tags[SCHEDULE_NAME_TAG]}"
    return None  # launched from the UI or `dagster` without a user: Dagster OSS records none


def _source(tags: dict[str, str]) -> str:
    if tags.get("source"):
        return tags["source"]
    for tag, source in ((SENSOR_NAME_TAG, "sensor"), (SCHEDULE_NAME_TAG, "schedule"),
                        (BACKFILL_ID_TAG, "backfill")):
        if tags.get(tag):
            return source
    return "dagster"  # the UI, or `dagster asset materialize` / `dagster job launch`


def _iso(when: datetime | float | None) -> str | None:
    if when is None:
        return None
    if not isinstance(when, datetime):
        when = datetime.fromtimestamp(when, tz=timezone.utc)
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds")


class _RunEvents:
    """One run's events, each type read once, on demand."""

    def __init__(self, instance: dg.DagsterInstance, run_id: str):
        self.instance, self.run_id = instance, run_id
        self._cache: dict[dg.DagsterEventType, list] = {}

    def _records(self, event_type: dg.DagsterEventType) -> list:
        if event_type not in self._cache:
            self._cache[event_type] = list(
                self.instance.get_records_for_run(self.run_id, of_type=event_type).records)
        return self._cache[event_type]

    def _of(self, event_type: dg.DagsterEventType) -> list:
        return [r.event_log_entry.dagster_event for r in self._records(event_type)]

    def _asset_events(self) -> list[tuple[dg.AssetKey, str | None, dict[str, Any]]]:
        """Materializations and observations in the order they happened (a rollback records a
        materialization per step it undid, an observation per step with nothing to undo)."""
        records = sorted(self._records(dg.DagsterEventType.ASSET_MATERIALIZATION)
                         + self._records(dg.DagsterEventType.ASSET_OBSERVATION),
                         key=lambda r: r.storage_id)
        found = []
        for record in records:
            data = record.event_log_entry.dagster_event.event_specific_data
            event = getattr(data, "materialization", None) or data.asset_observation
            found.append((event.asset_key, event.partition, _values(event.metadata)))
        return found

    def migrations(self) -> list[str]:
        return sorted({ms[0] for key, _p, _m in self._asset_events() if (ms := migration_step_of_key(key))})

    def steps(self) -> list[dict[str, Any]]:
        """One entry per step asset; a backfill over many partitions records the same metadata
        on each partition's materialization, so it is counted once."""
        by_key: dict[tuple[str, str], dict[str, Any]] = {}
        # a step's own event first: a run of `backfill` also records each key range it ran
        events = sorted(self._asset_events(), key=lambda e: e[0].path[-1] == RANGES_STEP)
        for key, partition, metadata in events:
            ms = migration_step_of_key(key)
            if ms is None:
                continue
            if ms in by_key:
                by_key[ms]["partitions"] += 1 if partition else 0
                continue
            by_key[ms] = {
                "migration": ms[0], "step": ms[1], "direction": metadata.get("direction", "up"),
                "statements": metadata.get("statements", 0),
                "rows_affected": metadata.get("rows_affected", 0),
                "duration_s": metadata.get("duration_s"),
                "sql": _sql_text(metadata.get("sql")),
                "partitions": 1 if partition else 0,
            }
            for extra in ("skipped", "passed", "error", "proof", "file_changed", "target_database",
                          "file_checksum", "status"):
                if extra in metadata:
                    by_key[ms][extra] = metadata[extra]
        return list(by_key.values())

    def checks(self) -> list[dict[str, Any]]:
        checks = []
        for event in self._of(dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            ev: dg.AssetCheckEvaluation = event.event_specific_data
            metadata = _values(ev.metadata)
            outcomes = metadata.get("outcomes") or []
            checks.append({
                "migration": ev.asset_key.path[0], "asset": ev.asset_key.to_user_string(),
                "check": ev.check_name, "passed": ev.passed,
                "severity": ev.severity.value if ev.severity else None,
                "failed": [
                    {k: o.get(k) for k in ("name", "description", "observed", "samples")}
                    for o in outcomes if isinstance(o, dict) and not o.get("passed", True)
                ],
            })
        return checks

    def error(self) -> str | None:
        for _key, _partition, metadata in self._asset_events():
            if metadata.get("error"):
                return str(metadata["error"])
        for event in self._of(dg.DagsterEventType.STEP_FAILURE):
            error = event.event_specific_data.error
            while error is not None and error.cause is not None:  # the user's error, not Dagster's wrapper
                error = error.cause
            if error is not None:
                return " ".join(error.message.split())[:500]
        for event in self._of(dg.DagsterEventType.RUN_FAILURE):
            if event.message:
                return " ".join(event.message.split())[:500]
        return None


def _values(metadata: dict[str, Any]) -> dict[str, Any]:
    return {k: getattr(v, "value", v) for k, v in metadata.items()}


def _sql_text(value: Any) -> str:
    """The SQL of a step's `sql` metadata (a fenced Markdown block), or '' when none ran."""
    if not value or not isinstance(value, str):
        return ""
    match = _SQL_FENCE.match(value.strip())
    return match.group(1) if match else ("" if value.strip() == "_no SQL ran_" else value)


# -- rendering ---------------------------------------------------------------------------------
COLUMNS = ("created (UTC)", "run", "migration", "step", "dir", "actor", "source", "version",
           "status", "rows")


def render_table(entries: Iterable[dict[str, Any]]) -> str:
    entries = list(entries)
    if not entries:
        return "no migration runs recorded"
    rows, notes = [], []
    for e in entries:
        version = e["code_version"] or "-"
        rows.append((
            e["created_at"][:19].replace("T", " "), e["run_id"][:8], e["migration"], e["step"] or "-",
            e["direction"], e["actor"] or "-", e["source"],
            version[:8] + ("-dirty" if version.endswith("-dirty") else ""), e["status"],
            str(sum(s["rows_affected"] or 0 for s in e["steps"])),
        ))
        notes.append(_notes(e))
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [line(COLUMNS)]
    for row, extra in zip(rows, notes):
        out.append(line(row))
        out.extend(" " * (widths[0] + 2) + note for note in extra)
    return "\n".join(out)


def _notes(entry: dict[str, Any]) -> list[str]:
    notes = []
    for check in entry["checks"]:
        if check["passed"] or check["check"] == APPLIED_CHECK:  # `applied` fails on a rollback
            continue
        notes.append(f"check {check['asset']}:{check['check']} FAILED")
        for o in check["failed"]:
            keys = ", ".join(map(str, (o.get("samples") or [])[:10]))
            notes.append(f"  {o['name']}: observed {o['observed']}" + (f"; keys {keys}" if keys else ""))
    if entry["rollback"]:
        rb = entry["rollback"]
        what = rb.get("failed_checks") or rb.get("failed_step")
        reason = rb.get("reason") or "requested"
        trigger = f", triggered by run {rb['triggered_by_run'][:8]}" if rb.get("triggered_by_run") else ""
        notes.append(f"rollback: {reason}{f' ({what})' if what else ''}{trigger}")
    if entry["error"]:
        notes.append(f"error: {entry['error'][:200]}")
    return notes


def print_audit(migration: str | None, since: str | None = None, as_json: bool = False) -> int:
    from .. import settings

    when = parse_since(since)
    settings.dagster_home()
    with dg.DagsterInstance.get() as instance:
        entries = audit_log(instance, migration, when)
    print(json.dumps(entries, indent=2, default=str) if as_json else render_table(entries))
    return 0
