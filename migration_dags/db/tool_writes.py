"""Marking the tool's own writes, so its sync triggers can tell them from the application's.

The tool's sync triggers carry a WHEN clause on a session setting (skip_writes_of): 'on' marks a
restore in an undo path, which every sync trigger skips; a backfill batch names the one trigger
whose work its statement already does (mark_backfill_of), and only that one skips it.
"""

from __future__ import annotations

from ..identifiers import literal

TOOL_WRITE_SETTING = "migration_dags.backfill"
MARK_TOOL_WRITE = f"SET LOCAL {TOOL_WRITE_SETTING} = 'on'"


def mark_backfill_of(trigger: str | None) -> str:
    """SET LOCAL for one backfill batch: only the trigger whose work the batch's statement already
    does (the operation's own sync trigger) may skip it; every other sync trigger still fires, so a
    backfill that writes a column another operation's trigger reads keeps that one in step."""
    return f"SET LOCAL {TOOL_WRITE_SETTING} = {literal(trigger or 'none')}"


def skip_writes_of(trigger: str) -> str:
    """A trigger's WHEN clause: fire unless the write is a restore ('on') or its own backfill."""
    return (f"coalesce(current_setting('{TOOL_WRITE_SETTING}', true), '') "
            f"NOT IN ('on', {literal(trigger)})")
