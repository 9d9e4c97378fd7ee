"""What a run that died inside a step can leave beyond the step's own records, and its removal.

Most steps need nothing here: their actions are idempotent and recognise their own partial work
(a column added IF NOT EXISTS, an index valid or invalid, a constraint, a trigger), so re-running
them (up) or their undo (down) finishes or removes it. The backup step is the exception: a copy is
made in one transaction but recorded in the next, and each run names its copies after its run
id, so a kill in between leaves a full-table copy no record points at (and the capture of
application writes it started: a trigger on the table and a table of written keys).

    clear_leftovers(run, step, run_ids)   before a started step is resumed, and when it is undone
"""

from __future__ import annotations

from .. import state
from ..backup_tables import backup_table_name
from ..state import capture as capture_state
from .base import StepRun


def clear_leftovers(run: StepRun, step: str, run_ids: list[str]) -> None:
    if step == "backup":
        drop_partial_backups(run, run_ids)


def drop_partial_backups(run: StepRun, run_ids: list[str]) -> None:
    """Every copy a started, unfinished backup made, recorded or not, and its records: the step
    is not applied, so no later step has run and the copies are simply taken again."""
    conn = run.conn
    recorded = [(rec.source, rec.backup) for rec in state.backups(conn, run.name)]
    named = [(table, backup_table_name(run.name, rid, table))
             for rid in run_ids for table in run.migration.existing_tables()]
    # the capture each copy started (its trigger on the table, function and record of writes)
    for source, backup in dict.fromkeys([*recorded, *named]):
        capture_state.remove(conn, source, backup, run.name, run.engine.lock_settings)
    with conn.transaction():
        for _source, table in dict.fromkeys([*recorded, *named]):
            conn.execute(f"DROP TABLE IF EXISTS {table.sql}")
        state.forget_backups(conn, run.name)
    if named or recorded:
        run.log(f"backup: dropped the copies of the run that stopped inside the step")
