"""A simulated application writing a table while a migration runs: one thread inserting, one
updating (the very columns being migrated too), one deleting, each on its own connection, and a
record of every write that committed, to check after up and after down that each one survived.

Columns are named as the application knew them before the migration (logical names). A write
naming a column the migration renamed is retried under `aliases`; a write naming a column that is
gone (dropped at cutover) is retried without the `optional` columns, or counted as refused: a
refused write changed nothing, so nothing is expected of it. Keys written by one thread are never
written by another (the deleter takes keys the updater leaves alone), so the record is exact.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql


@dataclass
class Workload:
    table: str
    key: str
    initial_keys: range
    insert: Callable[[random.Random, int], dict[str, str]]   # a new row's values
    updates: list[Callable[[random.Random], dict[str, str]]]  # each gives {column: value}
    aliases: dict[str, list[str]] = field(default_factory=dict)
    optional: set[str] = field(default_factory=set)
    pause_s: float = 0.003


@dataclass
class Written:
    deleted: bool = False
    columns: dict[str, str] = field(default_factory=dict)


class Application:
    """Start with `start()`; `pause()`/`resume()` around checks; `stop()` at the end."""

    def __init__(self, url: str, workload: Workload, seed: int = 14):
        self.url, self.w = url, workload
        self.rng = random.Random(seed)
        self.written: dict[int, Written] = {}
        self.lock = threading.Lock()
        self.inserted: list[int] = []
        self.counts = {"insert": 0, "update": 0, "delete": 0, "refused": 0}
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._running = threading.Event()
        self._idle = [threading.Event() for _ in range(3)]
        self._threads = [threading.Thread(target=self._loop, args=(i, f), daemon=True)
                         for i, f in enumerate((self._insert, self._update, self._delete))]
        keys = list(workload.initial_keys)
        self._update_keys = [k for k in keys if k % 3 != 2]
        self._delete_keys = [k for k in keys if k % 3 == 2]
        self.rng.shuffle(self._delete_keys)
        self._next_key = max(keys) + 1_000_000

    # -- control ---------------------------------------------------------------------------------
    def start(self) -> "Application":
        self._running.set()
        for t in self._threads:
            t.start()
        return self

    def pause(self) -> None:
        """Return once no write is in flight."""
        self._running.clear()
        for idle in self._idle:
            idle.wait(timeout=60)

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()
        for t in self._threads:
            t.join(timeout=60)
        assert not self.errors, f"the application's writes failed: {self.errors[:3]}"

    def writes(self) -> int:
        return self.counts["insert"] + self.counts["update"] + self.counts["delete"]

    def wait_for_writes(self, n: int, timeout_s: float = 60) -> None:
        """Until `n` more writes have committed."""
        target, deadline = self.writes() + n, time.monotonic() + timeout_s
        while self.writes() < target and time.monotonic() < deadline:
            time.sleep(0.01)

    # -- threads ---------------------------------------------------------------------------------
    def _loop(self, index: int, write: Callable[[psycopg.Connection, random.Random], None]) -> None:
        rng = random.Random(self.rng.random())
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                while not self._stop.is_set():
                    if not self._running.is_set():
                        self._idle[index].set()
                        self._running.wait()
                        continue
                    self._idle[index].clear()
                    write(conn, rng)
                    time.sleep(self.w.pause_s)
        except BaseException as exc:  # reported by stop()
            self.errors.append(exc)
        finally:
            self._idle[index].set()

    def _execute(self, conn: psycopg.Connection, build: Callable[[dict[str, str]], sql.Composed],
                 values: dict[str, str]) -> dict[str, str] | None:
        """Run the write under the columns' current names; the values it wrote, or None when
        the columns are gone (refused). Values go in as literals of unknown type, as an
        application's SQL text would, so '12.50' fits a text column and a numeric one alike."""
        for attempt in self._name_choices(values):
            try:
                conn.execute(build(attempt))
                return {logical: values[logical] for logical in attempt_logical(attempt, values)}
            except pg_errors.UndefinedColumn:
                continue
        self.counts["refused"] += 1
        return None

    def _name_choices(self, values: dict[str, str]):
        """The values under their names now: as given, then under aliases, then without the
        optional columns."""
        yield dict(values)
        for logical, names in self.w.aliases.items():
            if logical in values:
                for alias in names:
                    yield {(alias if c == logical else c): v for c, v in values.items()}
        trimmed = {c: v for c, v in values.items() if c not in self.w.optional}
        if trimmed and trimmed != values:
            yield trimmed

    def _insert(self, conn: psycopg.Connection, rng: random.Random) -> None:
        key = self._next_key
        self._next_key += 1
        values = {self.w.key: str(key), **self.w.insert(rng, key)}

        def build(v):
            return sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                sql.Identifier(self.w.table), sql.SQL(", ").join(map(sql.Identifier, v)),
                sql.SQL(", ").join(map(sql.Literal, v.values())))

        done = self._execute(conn, build, values)
        if done is not None:
            with self.lock:
                done.pop(self.w.key, None)
                self.written[key] = Written(False, done)
                self.inserted.append(key)
                self.counts["insert"] += 1

    def _update(self, conn: psycopg.Connection, rng: random.Random) -> None:
        with self.lock:
            pool = self._update_keys + self.inserted
        key = rng.choice(pool)
        values = rng.choice(self.w.updates)(rng)

        def build(v):
            return sql.SQL("UPDATE {} SET {} WHERE {} = {}").format(
                sql.Identifier(self.w.table),
                sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(c), sql.Literal(x))
                                   for c, x in v.items()),
                sql.Identifier(self.w.key), sql.Literal(key))

        done = self._execute(conn, build, values)
        if done is not None:
            with self.lock:
                self.written.setdefault(key, Written()).columns.update(done)
                self.counts["update"] += 1

    def _delete(self, conn: psycopg.Connection, rng: random.Random) -> None:
        if not self._delete_keys:
            return
        key = self._delete_keys.pop()
        conn.execute(sql.SQL("DELETE FROM {} WHERE {} = %s").format(
            sql.Identifier(self.w.table), sql.Identifier(self.w.key)), [key])
        with self.lock:
            self.written[key] = Written(True)
            self.counts["delete"] += 1


def attempt_logical(attempt: dict[str, str], values: dict[str, str]) -> list[str]:
    """The logical names of the columns an attempt wrote (aliases map back to them)."""
    out = []
    for name in attempt:
        if name in values:
            out.append(name)
        else:  # an alias: the logical column whose value it carries, by position
            out.append(list(values)[list(attempt).index(name)])
    return out


def rows_as_text(conn: psycopg.Connection, table: str, key: str) -> dict[int, dict[str, str | None]]:
    """Every row, key -> {column: value as text}."""
    rows = conn.execute(sql.SQL(
        "SELECT t.{}, (SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each_text(to_jsonb(t)) AS e) "
        "FROM {} AS t").format(sql.Identifier(key), sql.Identifier(table))).fetchall()
    return {int(k): v for k, v in rows}


def check_writes_survived(app: Application, now: dict[int, dict], before: dict[int, dict],
                          aliases: dict[str, list[str]] | None = None, when: str = "") -> None:
    """Every committed application write is there (under the column's current name, when the
    migration renamed it); every row the application never wrote equals `before` in `before`'s
    columns (skipped when `before` is empty)."""
    aliases = aliases or {}
    problems = []
    for key, w in app.written.items():
        row = now.get(key)
        if w.deleted:
            if row is not None:
                problems.append(f"deleted key {key} is back")
            continue
        if row is None:
            problems.append(f"written key {key} is missing")
            continue
        for logical, value in w.columns.items():
            names = [logical, *aliases.get(logical, [])]
            name = next((n for n in names if n in row), None)
            if name is None:
                continue  # the column is gone in this shape (dropped at cutover)
            if row[name] != value:
                problems.append(f"key {key}: {name} = {row[name]!r}, the application wrote {value!r}")
    for key, old in before.items():
        if key in app.written:
            continue
        row = now.get(key)
        if row is None:
            problems.append(f"untouched key {key} is missing")
        elif any(row.get(c) != v for c, v in old.items()):
            problems.append(f"untouched key {key} differs: {row} vs {old}")
    assert not problems, f"{len(problems)} problems {when}: {problems[:5]}"
