"""Expand, release, contract (expand/): while a migration is expanded, an old release (search_path
public) and a new one (search_path public_<migration>, public) both read and write the same
table without a failed write and with every row right; `complete` refuses while the old release
still writes and contracts once it stopped; the new release keeps working after it; a down from
the expanded state drops what the expansion added and keeps every write."""

from __future__ import annotations

import random
import threading
import time

import psycopg
import pytest
from operations.lifecycle import engine_for, run_sql, snapshot

from migration_dags.errors import OldShapeWritesError, RefusedError
from migration_dags.expand import CompleteOptions
from migration_dags.steps import STEPS

pytestmark = pytest.mark.db

ROWS = 2000
SETUP = f"""
CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, name text,
                    price text NOT NULL DEFAULT '0.00', legacy text NOT NULL);
INSERT INTO users SELECT g, 'User' || g || '@Host' || (g % 7) || '.Example', 'name ' || g,
       to_char(g % 100, 'FM990') || '.50', 'legacy ' || g
FROM generate_series(1, {ROWS}) AS g;
"""
SETTINGS = "settings: {batch_size: 200, partition_rows: 1000, lock_timeout_ms: 500, retries: 50}"

RESHAPE = f"""
name: reshape
tables: [users]
{SETTINGS}
operations:
  - add_column:
      table: users
      column: {{name: email_domain, type: text, nullable: false}}
      up: "lower(split_part(email, '@', 2))"
  - rename_column: {{table: users, from: name, to: full_name}}
  - alter_column:
      table: users
      column: price
      type: numeric(10,2)
      up: "price::numeric(10,2)"
      down: "to_char(price, 'FM99999990.00')"
      default: "0"
  - drop_column: {{table: users, column: legacy, down: "'from the new release'"}}
"""


def _domain(email: str) -> str:
    return email.split("@")[1].lower()


class Release(threading.Thread):
    """One application release writing `users` in its shape until stopped: inserts of its own
    keys, updates of any row, deletes of rows it inserted. Every failed write is kept."""

    def __init__(self, url: str, shape: str, first_key: int, seed: int):
        super().__init__(daemon=True)
        self.url, self.shape, self.next_key = url, shape, first_key
        self.rng = random.Random(seed)
        self.errors: list[str] = []
        self.writes = 0
        self.mine: list[int] = []
        self._halt = threading.Event()
        self._paused = threading.Event()
        self._idle = threading.Event()

    def run(self) -> None:
        options = "-c search_path=public_reshape,public" if self.shape == "new" else ""
        with psycopg.connect(self.url, autocommit=True, options=options,
                             application_name=f"app {self.shape}") as conn:
            while not self._halt.is_set():
                if self._paused.is_set():
                    self._idle.set()
                    time.sleep(0.01)
                    continue
                self._idle.clear()
                try:
                    self._write(conn)
                    self.writes += 1
                except psycopg.Error as exc:
                    self.errors.append(f"{self.shape}: {' '.join(str(exc).split())}")
                time.sleep(0.002)
        self._idle.set()

    def _write(self, conn: psycopg.Connection) -> None:
        choice = self.rng.random()
        email = f"W{self.rng.randrange(10**6)}@Release-{self.shape}.Example"
        price = f"{self.rng.randrange(1000)}.{self.rng.randrange(100):02d}"
        if choice < 0.4 or not self.mine:
            key = self.next_key
            self.next_key += 1
            if self.shape == "old":
                conn.execute("INSERT INTO users (id, email, name, price, legacy) "
                             "VALUES (%s, %s, %s, %s, %s)", (key, email, f"old {key}", price, "old"))
            else:  # the new release fills what it knows of the new shape itself
                conn.execute("INSERT INTO users (id, email, email_domain, full_name, price) "
                             "VALUES (%s, %s, %s, %s, %s)",
                             (key, email, _domain(email), f"new {key}", price))
            self.mine.append(key)
        elif choice < 0.9:
            key = self.rng.randrange(1, ROWS + 1)
            if self.shape == "old":
                conn.execute("UPDATE users SET email = %s, name = %s, price = %s WHERE id = %s",
                             (email, f"old upd {key}", price, key))
            else:
                conn.execute("UPDATE users SET email = %s, email_domain = %s, full_name = %s, "
                             "price = %s WHERE id = %s",
                             (email, _domain(email), f"new upd {key}", price, key))
        else:
            conn.execute("DELETE FROM users WHERE id = %s", (self.mine.pop(0),))

    def wait_for(self, n: int, timeout_s: float = 30) -> None:
        goal, deadline = self.writes + n, time.monotonic() + timeout_s
        while self.writes < goal and time.monotonic() < deadline and not self.errors:
            time.sleep(0.01)

    def pause(self) -> None:
        self._paused.set()
        self._idle.wait(10)

    def resume(self) -> None:
        self._paused.clear()

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def _count(url: str, sql: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql).fetchone()[0]


WRONG_WHILE_EXPANDED = {
    "email_domain differs from up(email)":
        "SELECT count(*) FROM users WHERE email_domain IS DISTINCT FROM lower(split_part(email, '@', 2))",
    "the new price differs from up(the old one)":
        "SELECT count(*) FROM public.users u JOIN public_reshape.users v USING (id) "
        "WHERE v.price IS DISTINCT FROM u.price::numeric(10,2)",
    "the old price differs from down(the new one)":
        "SELECT count(*) FROM public.users u JOIN public_reshape.users v USING (id) "
        "WHERE u.price IS DISTINCT FROM to_char(v.price, 'FM99999990.00')",
    "a name differs between the shapes":
        "SELECT count(*) FROM public.users u JOIN public_reshape.users v USING (id) "
        "WHERE u.name IS DISTINCT FROM v.full_name",
    "legacy is NULL": "SELECT count(*) FROM users WHERE legacy IS NULL",
}


def _assert_every_row_right(url: str, checks: dict[str, str]) -> None:
    wrong = {what: n for what, sql in checks.items() if (n := _count(url, sql))}
    assert not wrong, f"rows wrong: {wrong}"


def _expand(engine) -> None:
    for step in STEPS[:-1]:
        engine.up(step)


def test_both_releases_write_while_expanded_and_complete_waits_for_the_old_one(
        database_url, migrations_dir):
    run_sql(database_url, SETUP)
    engine = engine_for(database_url, migrations_dir, RESHAPE)
    old = Release(database_url, "old", 1_000_000, seed=1)
    new = Release(database_url, "new", 2_000_000, seed=2)
    old.start()
    try:
        old.wait_for(20)
        _expand(engine)
        new.start()
        old.wait_for(100)
        new.wait_for(100)
        for release in (old, new):
            release.pause()
        _assert_every_row_right(database_url, WRONG_WHILE_EXPANDED)
        assert engine.status().state == "expanded"
        for release in (old, new):
            release.resume()
        old.wait_for(20)

        engine.complete_options = CompleteOptions(quiet_seconds=2)
        with pytest.raises(OldShapeWritesError) as refused:
            engine.up("cutover")
        assert refused.value.exit_code == 10 and refused.value.writes > 0
        assert engine.status().state == "expanded", "a refused complete changed the state"

        old.stop()
        time.sleep(2.2)  # the quiet period
        engine.up("cutover")
        assert engine.status().state == "complete"
        new.wait_for(150)
        new.pause()
        _assert_every_row_right(database_url, {
            "email_domain differs": WRONG_WHILE_EXPANDED["email_domain differs from up(email)"],
            "price is not numeric": "SELECT count(*) FROM information_schema.columns WHERE "
                                    "table_name = 'users' AND column_name = 'price' AND "
                                    "data_type <> 'numeric'",
            "legacy still there": "SELECT count(*) FROM information_schema.columns WHERE "
                                  "table_name = 'users' AND column_name = 'legacy'",
        })
    finally:
        old.stop()
        new.stop()
    assert old.writes > 100 and new.writes > 200
    assert not old.errors, old.errors[:3]
    assert not new.errors, new.errors[:3]


def test_down_from_expanded_drops_the_expansion_and_keeps_every_write(database_url, migrations_dir):
    run_sql(database_url, SETUP)
    engine = engine_for(database_url, migrations_dir, RESHAPE)
    before = snapshot(database_url)
    _expand(engine)
    old = Release(database_url, "old", 1_000_000, seed=3)
    new = Release(database_url, "new", 2_000_000, seed=4)
    for release in (old, new):
        release.start()
    try:
        old.wait_for(100)
        new.wait_for(100)
        for step in reversed(STEPS[:-1]):
            if step == "schema_change":  # the new release goes with its shape
                new.stop()
            engine.down(step)
    finally:
        old.stop()
        new.stop()
    assert not old.errors, old.errors[:3]
    assert not new.errors, new.errors[:3]
    after = snapshot(database_url)
    assert after.schema == before.schema, "the schema differs after down from expanded"
    # every row the new release inserted and did not delete is there, in the old shape
    kept = [k for k in new.mine]
    assert kept and _count(database_url, f"SELECT count(*) FROM users WHERE id = ANY(ARRAY{kept}::bigint[]) "
                                         "AND legacy = 'from the new release'") == len(kept)
    assert _count(database_url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'public_reshape'") == 0


def test_rename_column_both_names_work_while_expanded(database_url, migrations_dir):
    run_sql(database_url, SETUP)
    engine = engine_for(database_url, migrations_dir, f"""
        name: reshape
        tables: [users]
        {SETTINGS}
        operations:
          - rename_column: {{table: users, from: name, to: full_name}}
        """)
    _expand(engine)
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert conn.execute("SELECT name FROM public.users WHERE id = 1").fetchone() == ("name 1",)
        assert conn.execute("SELECT full_name FROM public_reshape.users WHERE id = 1"
                            ).fetchone() == ("name 1",)
        conn.execute("INSERT INTO public.users (id, email, name, legacy) VALUES (-1, 'a@b', 'old', 'x')")
        conn.execute("INSERT INTO public_reshape.users (id, email, full_name, legacy) "
                     "VALUES (-2, 'c@d', 'new', 'y') RETURNING id")
        rows = conn.execute("SELECT id, name FROM public.users WHERE id < 0 ORDER BY id").fetchall()
        assert rows == [(-2, "new"), (-1, "old")]
        conn.execute("UPDATE public_reshape.users SET full_name = 'renamed' WHERE id = -1")
        assert conn.execute("SELECT name FROM public.users WHERE id = -1").fetchone() == ("renamed",)


def test_operations_that_keep_the_shape_complete_without_waiting(database_url, migrations_dir):
    """create_table, create_index, add_check, add_foreign_key, backfill: the old release's writes
    never go wrong after them, so nothing is counted and complete does not wait; both shapes
    write throughout."""
    run_sql(database_url, SETUP)
    engine = engine_for(database_url, migrations_dir, f"""
        name: reshape
        tables: [users]
        {SETTINGS}
        operations:
          - create_table:
              table: user_notes
              columns:
                - {{name: id, type: bigint, primary_key: true}}
                - {{name: user_id, type: bigint}}
          - create_index: {{name: users_email_idx, table: users, columns: [email]}}
          - add_check: {{table: users, name: users_email_has_at, check: "email LIKE '%@%'"}}
          - add_foreign_key:
              table: user_notes
              name: user_notes_user_fk
              columns: [user_id]
              references: {{table: users, columns: [id]}}
          - backfill: {{table: users, set: {{legacy: "upper(legacy)"}}, where: "id <= {ROWS}"}}
        """)
    old = Release(database_url, "old", 1_000_000, seed=5)
    old.start()
    try:
        old.wait_for(20)
        _expand(engine)
        old.wait_for(50)
        engine.complete_options = CompleteOptions(quiet_seconds=300)
        engine.up("cutover")  # the old release still writes, and may
        old.wait_for(50)
    finally:
        old.stop()
    assert not old.errors, old.errors[:3]
    assert engine.status().old_shape_writes is None


def test_complete_before_expanded_is_refused(database_url, migrations_dir):
    run_sql(database_url, SETUP)
    engine = engine_for(database_url, migrations_dir, RESHAPE)
    engine.up("backup")
    with pytest.raises(RefusedError):
        engine.up("cutover")


def test_a_second_migration_on_an_expanded_table_is_refused_until_complete(
        database_url, migrations_dir):
    run_sql(database_url, SETUP)
    first = engine_for(database_url, migrations_dir, RESHAPE)
    _expand(first)
    second = engine_for(database_url, migrations_dir, f"""
        name: second
        tables: [users]
        {SETTINGS}
        operations:
          - add_column: {{table: users, column: {{name: note, type: text}}}}
        """)
    second.up("backup")
    with pytest.raises(RefusedError, match="reshape is expanded"):
        second.up("schema_change")
    first.complete_options = CompleteOptions(force=True)
    first.up("cutover")
    second.up("schema_change")  # drops the complete migration's version schema first
    assert _count(database_url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'public_reshape'") == 0
    assert _count(database_url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'public_second'") == 1
