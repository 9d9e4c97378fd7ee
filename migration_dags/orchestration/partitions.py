"""The backfill's dynamic partitions: one per key range the engine planned at schema_change.

A Dagster key is the engine's key followed by the range it covers, so the UI says what a
partition is: `00-00001 id >25000 <=50000 @3f9c2a` (bounds are (lower, upper]; the first range
has no lower bound, the last no upper one). The `@` part names the round: the run that planned the
ranges (schema_change). After a rollback and a new `up`, the new round's partitions are new keys,
so the UI never shows a partition as materialized by an earlier round. engine_partition() takes
the engine's key back.

The engine owns the ranges (state table backfill_ranges); the Dagster instance only mirrors them,
so `sync` makes the instance's set equal the engine's: it adds new keys and deletes stale ones
(left by a rolled-back earlier attempt, or planned into another instance). A migration with
nothing to backfill still gets one partition, NOTHING_TO_BACKFILL, so its backfill step can run
(and be recorded) like any other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

from .. import state
from ..batches import key_spec

if TYPE_CHECKING:
    from ..engine import MigrationEngine

NOTHING_TO_BACKFILL = "nothing-to-backfill"
SHOWN_VALUE_CHARS = 24


def partitions_def_name(migration: str) -> str:
    return f"{migration}__backfill"


def backfill_partitions_def(migration: str) -> dg.DynamicPartitionsDefinition:
    return dg.DynamicPartitionsDefinition(name=partitions_def_name(migration))


def engine_partition(key: str) -> str | None:
    """The engine's partition for a Dagster key (None: the whole, empty, backfill)."""
    return None if key == NOTHING_TO_BACKFILL else key.split(" ", 1)[0]


def planned_keys(engine: "MigrationEngine") -> list[str]:
    """The engine's planned key ranges as Dagster keys that name their range, in order."""
    name = engine.migration.name
    with engine.connection("partitions") as conn:
        if not state.state_exists(conn):
            return []
        keys = state.range_keys(conn, name)
        if not keys:
            return []
        tasks = engine.backfill_tasks(engine.context(conn))
        planned_by = state.applied_steps(conn, name).get("schema_change", {}).get("run_id") or ""
        generation = f" @{planned_by[:6]}" if planned_by else ""
        columns: dict[int, list[str]] = {}  # a task's key columns: read once, not per range
        labelled = []
        for key in keys:
            saved = state.read_range(conn, name, key)
            if saved.task_index not in columns:
                columns[saved.task_index] = key_spec(conn, tasks[saved.task_index].range_table).columns
            words = range_words(columns[saved.task_index], saved.lower, saved.upper)
            labelled.append(f"{key} {words}{generation}")
        return labelled


def range_words(columns: list[str], lower: list[str] | None, upper: list[str] | None) -> str:
    """`id >25000 <=50000`; `(a/b) >(1/x) <=(2/y)` for a composite key; `id all` for one range."""
    def value(v: list[str]) -> str:
        shown = "/".join(_printable(x) for x in v)
        return shown if len(v) == 1 else f"({shown})"

    column = columns[0] if len(columns) == 1 else "(" + "/".join(columns) + ")"
    parts = ([f">{value(lower)}"] if lower is not None else []) + (
        [f"<={value(upper)}"] if upper is not None else [])
    return f"{column} {' '.join(parts) or 'all'}"


def _printable(text: str) -> str:
    """Dagster keys may not hold '...' or control characters; long values are cut."""
    text = " ".join(str(text).split()).replace("...", "..")
    return text if len(text) <= SHOWN_VALUE_CHARS else text[: SHOWN_VALUE_CHARS - 1] + "~"


def sync(instance: dg.DagsterInstance, migration: str, planned: list[str]) -> list[str]:
    """Make the instance's partitions equal `planned` (the engine's keys); return them in order."""
    name = partitions_def_name(migration)
    wanted = list(planned) or [NOTHING_TO_BACKFILL]
    have = instance.get_dynamic_partitions(name)
    for stale in [k for k in have if k not in wanted]:
        instance.delete_dynamic_partition(name, stale)
    missing = [k for k in wanted if k not in have]
    if missing:
        instance.add_dynamic_partitions(name, missing)
    return list(instance.get_dynamic_partitions(name))


def clear(instance: dg.DagsterInstance, migration: str) -> None:
    """Forget every partition (after schema_change down, the engine forgets its ranges too)."""
    name = partitions_def_name(migration)
    for key in instance.get_dynamic_partitions(name):
        instance.delete_dynamic_partition(name, key)
