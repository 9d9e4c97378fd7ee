"""The command lock: one advisory lock held across every step a command runs, re-entrant in the
process, refused to everyone else naming the holder."""

from __future__ import annotations

import pytest

from migration_dags.db import command_lock, connect, covering, migration_lock
from migration_dags.engine import MigrationEngine
from migration_dags.errors import MigrationLockedError
from migration_dags.spec import load_migration

MIGRATION = """
name: leased
operations:
  - add_column:
      table: users
      column: {name: vip, type: boolean, default: 'false', nullable: false}
"""


def _try_lock(database_url: str) -> MigrationLockedError | None:
    other = connect(database_url, "someone else")
    try:
        with migration_lock(other):
            return None
    except MigrationLockedError as refused:
        return refused
    finally:
        other.close()


def test_steps_run_under_the_command_lock_and_nobody_slips_in_between(database_url, tmp_path):
    with connect(database_url) as conn:
        conn.execute("CREATE TABLE users (id int PRIMARY KEY)")
    (tmp_path / "leased.yaml").write_text(MIGRATION)
    engine = MigrationEngine(load_migration(tmp_path / "leased.yaml"), database_url)
    with command_lock(database_url, "migration-dags leased up (command lock)"):
        assert covering(database_url) is not None
        engine.up("backup")  # covered: not refused by the lock its own command holds
        refused = _try_lock(database_url)  # between two steps
        assert refused is not None and "leased up (command lock)" in refused.holder
        engine.up("schema_change")
        with command_lock(database_url, "nested"):  # an up's rollback runs down inside it
            engine.down("schema_change")
        assert _try_lock(database_url) is not None, "a nested command released the lock"
    assert covering(database_url) is None
    assert _try_lock(database_url) is None  # released at the end of the command
    engine.down("backup")


def test_a_command_is_refused_while_another_holds_the_lock(database_url):
    holder = connect(database_url, "migration-dags other up (command lock)")
    try:
        with migration_lock(holder):
            with pytest.raises(MigrationLockedError, match="other up"):
                with command_lock(database_url, "second"):
                    pass
    finally:
        holder.close()
