"""Change capture's cost on client latency: the same open-loop traffic with capture off and on.

    .venv/bin/python bench/capture_bench.py [--rows 300000] [--seconds 20] [--rounds 2]

A fresh database with `users` (id, email, theme), ROWS rows. /work/shared/tools/traffic.py runs
4 clients at 800 transactions/s in all (point SELECT + UPDATE by key, one transaction each;
latency counted from when a transaction was due). First, the added time of one write on a single
connection (median, capture off and on in alternating blocks). Then rounds alternate off, on, off, on ..., capture
being the trigger and table of state/capture.py installed as the backup step installs them (and
emptied between rounds, so every round starts from the same capture size). Prints each round and
the median p99 on against off. Checks nothing; the database is dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from migration_dags.identifiers import TableName  # noqa: E402
from migration_dags.state import ensure_state_tables  # noqa: E402
from migration_dags.state import capture as capture_state  # noqa: E402

TRAFFIC = Path("/work/shared/tools/traffic.py")
SERVER = os.environ.get("MIGRATION_DAGS_TEST_SERVER", "postgresql://postgres@127.0.0.1:5432/postgres")
USERS = TableName("public", "users")
BACKUP = TableName("migration_dags_backup", "bench_users")


def url_for(db: str) -> str:
    return SERVER.rsplit("/", 1)[0] + "/" + db


def traffic(url: str, rows: int, seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        stop, out = Path(tmp) / "stop", Path(tmp) / "out.json"
        proc = subprocess.Popen([sys.executable, str(TRAFFIC), url, str(rows), str(stop), str(out),
                                 "4", "800"])
        time.sleep(seconds)
        stop.touch()
        proc.wait(timeout=120)
        return json.loads(out.read_text())


def per_write_cost(conn: psycopg.Connection, rows: int, blocks: int = 10, per_block: int = 500) -> None:
    """One connection, single-row UPDATEs (a changed column each) and INSERT+DELETE pairs, capture
    off and on in alternating blocks: the median time of each, less sensitive to other load than
    the traffic's p99."""
    import random
    rng = random.Random(14)
    times: dict[tuple[str, str], list[float]] = {}
    for block in range(blocks):
        for mode in ("off", "on"):
            if mode == "on":
                capture_state.install(conn, USERS, BACKUP, ["id"], "bench")
            else:
                capture_state.remove(conn, USERS, BACKUP, "bench")
            for _ in range(per_block):
                key = rng.randint(1, rows)
                t = time.perf_counter()
                conn.execute("UPDATE users SET email = %s WHERE id = %s", (f"e{rng.random()}", key))
                times.setdefault(("update", mode), []).append(time.perf_counter() - t)
                t = time.perf_counter()
                conn.execute("INSERT INTO users VALUES (%s, 'x', 'y')", (rows + 1 + block * per_block + _,))
                times.setdefault(("insert", mode), []).append(time.perf_counter() - t)
                conn.execute("DELETE FROM users WHERE id > %s", (rows,))
    capture_state.remove(conn, USERS, BACKUP, "bench")
    for kind in ("update", "insert"):
        off = statistics.median(times[(kind, "off")]) * 1e6
        on = statistics.median(times[(kind, "on")]) * 1e6
        print(f"one {kind} (autocommit, median of {blocks * per_block}): off {off:.0f} us, "
              f"on {on:.0f} us: +{on - off:.0f} us per write")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    db = f"capture_bench_{os.getpid()}"
    with psycopg.connect(SERVER, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{db}"')
    url = url_for(db)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL, theme text)")
            conn.execute(f"INSERT INTO users SELECT g, 'user' || g || '@example.com', 'light' "
                         f"FROM generate_series(1, {args.rows}) g")
            conn.execute("VACUUM ANALYZE users")
            ensure_state_tables(conn)
            print(f"{args.rows} users; traffic: 4 clients, 800 txn/s open loop, {args.seconds:.0f} s "
                  f"per round; rounds alternate capture off/on")
            per_write_cost(conn, args.rows)
            p99 = {"off": [], "on": []}
            for round_no in range(args.rounds):
                for mode in ("off", "on"):
                    if mode == "on":
                        capture_state.install(conn, USERS, BACKUP, ["id"], "bench")
                        conn.execute(f"TRUNCATE {capture_state.capture_table(BACKUP).sql}")
                    else:
                        capture_state.remove(conn, USERS, BACKUP, "bench")
                    r = traffic(url, args.rows, args.seconds)
                    captured = (conn.execute(f"SELECT count(*) FROM {capture_state.capture_table(BACKUP).sql}"
                                             ).fetchone()[0] if mode == "on" else 0)
                    p99[mode].append(r["p99_ms"])
                    print(f"round {round_no + 1} capture {mode:>3}: tps {r['tps']:7.1f}  p50 "
                          f"{r['p50_ms']:5.1f} ms  p99 {r['p99_ms']:6.1f} ms  max {r['max_ms']:7.1f} ms"
                          f"  failed {r['failed']}  keys captured {captured}")
            capture_state.remove(conn, USERS, BACKUP, "bench")
        off, on = statistics.median(p99["off"]), statistics.median(p99["on"])
        print(f"median p99: off {off:.1f} ms, on {on:.1f} ms: capture costs {100 * (on - off) / off:+.1f}%")
    finally:
        with psycopg.connect(SERVER, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


if __name__ == "__main__":
    main()
