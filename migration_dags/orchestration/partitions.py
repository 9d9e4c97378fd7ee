"""The backfill's dynamic partitions: one per key range the engine planned at schema_change.

The engine owns the ranges (state table backfill_ranges); the Dagster instance only mirrors them,
so `sync` makes the instance's set equal the engine's: it adds new keys and deletes stale ones
(left by a rolled-back earlier attempt, or planned into another instance). A migration with
nothing to backfill still gets one partition, NOTHING_TO_BACKFILL, so its backfill step can run
(and be recorded) like any other.
"""

from __future__ import annotations

import dagster as dg

NOTHING_TO_BACKFILL = "nothing-to-backfill"


def partitions_def_name(migration: str) -> str:
    return f"{migration}__backfill"


def backfill_partitions_def(migration: str) -> dg.DynamicPartitionsDefinition:
    return dg.DynamicPartitionsDefinition(name=partitions_def_name(migration))


def engine_partition(key: str) -> str | None:
    """The engine's partition for a Dagster key (None: the whole, empty, backfill)."""
    return None if key == NOTHING_TO_BACKFILL else key


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
