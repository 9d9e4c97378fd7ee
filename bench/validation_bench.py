"""Validation benchmark: our suite run against the same checks as ONE hand-written SQL query.

    .venv/bin/python bench/validation_bench.py [--server URL] [--rows 1000000] [--repeat 5]

In a fresh database on --server (default postgresql://postgres@127.0.0.1:5432/postgres) it
creates a `users` table as the demo migration leaves it before cutover (1,000,000 rows; 1 in 3
with a unique verification_token, indexed as the migration does), then times, in the same run:

  hand-written   one statement doing every check of expectations/users_email_verification.json
  our suite      the extra_checks hook (suite_checks) exactly as the validation step calls it:
                 reads the suite file, looks up the key, runs it (mode auto: our SQL path)

and prints both medians and their ratio (target: ours <= 3x).  It then times, for the record,
the ways of running the same suite through GX 1.24: our two-pass GX path (mode gx), GX as it
comes (SUMMARY with samples, and BOOLEAN_ONLY), and the row-level expectations per key-range
partition in 2 threads.  Last, it breaks the data (NULLs, a duplicate token, old unverified users)
and times the failing run, whose samples cost extra queries.  The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import types
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from migration_dags.suites import (  # noqa: E402
    LazyGx, Scope, load_suite, make_suite_checks, run_suite, whole_table,
)

SERVER = os.environ.get("MIGRATION_DAGS_TEST_SERVER", "postgresql://postgres@127.0.0.1:5432/postgres")
SUITE = "users_email_verification"
EXPECTATIONS = ROOT / "expectations"

HAND_WRITTEN = """
SELECT count(*) AS row_count,
       count(*) FILTER (WHERE email_verified IS NULL) AS email_verified_null,
       count(*) FILTER (WHERE email_verified NOT IN (true, false)) AS email_verified_not_boolean,
       (SELECT count(*) FROM (SELECT 1 FROM users WHERE verification_token IS NOT NULL
                              GROUP BY verification_token HAVING count(*) > 1) AS d)
         AS duplicated_tokens,
       count(*) FILTER (WHERE created_at < now() - interval '31 days'
                          AND email_verified IS NOT TRUE) AS old_unverified
FROM users"""

SEED = """
CREATE TABLE users (
    id bigint PRIMARY KEY,
    email text NOT NULL,
    created_at timestamptz NOT NULL,
    email_verified boolean DEFAULT false,   -- NOT NULL only from cutover on
    email_verified_at timestamptz,
    verification_token text
);
INSERT INTO users
SELECT g, 'user' || g || '@example.com',
       now() - (g % 90) * interval '1 day' - interval '1 hour',
       (g % 90) > 30 OR g % 7 = 0,
       NULL,
       CASE WHEN g % 3 = 0 THEN md5(g::text) END
FROM generate_series(1, {rows}) g;
CREATE INDEX users_verification_token_idx ON users (verification_token);
"""

BREAK = """
UPDATE users SET email_verified = NULL WHERE id % 2000 = 1;          -- NULLs left behind
UPDATE users SET verification_token = md5('3') WHERE id = 4;        -- a duplicate token
UPDATE users SET email_verified = false WHERE id IN (45, 46, 47);   -- old users unverified
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", default=SERVER)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    name = f"mdg_validation_bench_{os.getpid()}"
    with psycopg.connect(args.server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(args.server, dbname=name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            run(conn, url, args)
    finally:
        with psycopg.connect(args.server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        print(f"dropped database {name}")


def run(conn: psycopg.Connection, url: str, args) -> None:
    started = time.monotonic()
    conn.execute(SEED.format(rows=int(args.rows)))
    conn.execute("VACUUM ANALYZE users")
    server = conn.execute("SHOW server_version").fetchone()[0]
    workers = conn.execute("SHOW max_parallel_workers_per_gather").fetchone()[0]
    print(f"users: {args.rows:,} rows in {time.monotonic() - started:.1f} s; PostgreSQL {server}, "
          f"{os.cpu_count()} CPUs, max_parallel_workers_per_gather={workers}; "
          f"median of {args.repeat} runs after one warm-up")

    hook = make_suite_checks(EXPECTATIONS, mode="auto")
    engine = types.SimpleNamespace(  # what the hook reads of a MigrationEngine
        migration=types.SimpleNamespace(validation=types.SimpleNamespace(suites=(SUITE,)), name="bench"),
        database_url=url, log=lambda _m: None)

    def hand() -> tuple:
        return conn.execute(HAND_WRITTEN).fetchone()

    def ours():
        return hook(engine, conn, None)

    check_agreement(hand(), ours())
    t_hand, t_ours = timed_pair(hand, ours, args.repeat)
    print()
    print(f"hand-written query (1 statement)   {t_hand * 1000:8.1f} ms")
    print(f"our suite (suite_checks, auto)     {t_ours * 1000:8.1f} ms")
    print(f"ratio ours / hand-written          {t_ours / t_hand:8.2f}x   (target <= 3x)")

    investigate_gx(conn, url, args, t_hand)

    conn.execute(BREAK)
    conn.execute("VACUUM ANALYZE users")
    check_agreement(hand(), ours())
    t_hand, t_ours = timed_pair(hand, ours, args.repeat)
    print()
    print("with failures (1 row in 2000 NULL, 1 duplicated token, 3 old unverified):")
    print(f"hand-written query (counts only)   {t_hand * 1000:8.1f} ms")
    print(f"our suite (counts + sample keys)   {t_ours * 1000:8.1f} ms")
    print(f"ratio ours / hand-written          {t_ours / t_hand:8.2f}x")
    with LazyGx(url) as gx:
        suite = load_suite(SUITE, EXPECTATIONS)
        scope = whole_table(conn, suite)
        t_gx = median(lambda: run_suite(conn, suite, scope, gx, "gx"), max(3, args.repeat // 2))
    print(f"our GX path (mode gx)              {t_gx * 1000:8.1f} ms   {t_gx / t_hand:5.2f}x")
    for o in ours():
        print(f"  {'pass' if o.passed else 'FAIL'} {o.name}: observed {o.observed}"
              + (f", keys {', '.join(o.samples[:5])}{' ...' if len(o.samples) > 5 else ''}" if o.samples else ""))


def investigate_gx(conn: psycopg.Connection, url: str, args, t_hand: float) -> None:
    repeat = max(3, args.repeat // 2)
    t0 = time.monotonic()
    import great_expectations  # noqa: F401  (the one-time cost a process pays for the GX path)

    t_import = time.monotonic() - t0
    suite = load_suite(SUITE, EXPECTATIONS)
    scope = whole_table(conn, suite)
    from migration_dags.suites.gx_path import build_gx_suite

    t0 = time.monotonic()
    gx = LazyGx(url)
    gx()
    t_setup = time.monotonic() - t0
    try:
        # GX as a user would set it up: a table asset on users
        asset = gx().datasource.add_table_asset("users", table_name="users")
        batch = asset.add_batch_definition_whole_table("all").get_batch()
        gx_suite = build_gx_suite(suite)
        as_it_comes = {"result_format": "SUMMARY", "unexpected_index_column_names": list(scope.key)}
        rows = [
            ("our GX path (mode gx, 2 passes)", lambda: run_suite(conn, suite, scope, gx, "gx")),
            ("GX as it comes: SUMMARY + samples", lambda: batch.validate(gx_suite, result_format=as_it_comes)),
            ("GX as it comes: BOOLEAN_ONLY", lambda: batch.validate(gx_suite, result_format="BOOLEAN_ONLY")),
        ]
        print()
        print(f"GX 1.24, for the record (import {t_import:.1f} s once per process; "
              f"context + datasource {t_setup * 1000:.0f} ms once per run):")
        for label, fn in rows:
            t = median(fn, repeat)
            print(f"{label:<36}{t * 1000:8.1f} ms   {t / t_hand:5.2f}x")
    finally:
        gx.close()
    t_seq, t_par = partitions_in_threads(conn, url, suite, repeat)
    print(f"{'GX row-level, 2 partitions, serial':<36}{t_seq * 1000:8.1f} ms   {t_seq / t_hand:5.2f}x")
    print(f"{'GX row-level, 2 partitions, 2 thr.':<36}{t_par * 1000:8.1f} ms   {t_par / t_hand:5.2f}x"
          "   (no cross-partition uniqueness: not a whole-table check)")


def partitions_in_threads(conn, url, suite, repeat) -> tuple[float, float]:
    """The suite's row-level expectations on two key ranges, one GX runner and connection each."""
    middle = conn.execute("SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY id) FROM users").fetchone()[0]
    key = whole_table(conn, suite).key
    scopes = [Scope(suite.table, key, f"id <= {int(middle)}", "p0"),
              Scope(suite.table, key, f"id > {int(middle)}", "p1")]
    runners = [LazyGx(url), LazyGx(url)]
    conns = [psycopg.connect(url, autocommit=True) for _ in scopes]
    try:
        for r in runners:
            r()

        def one(i: int) -> None:
            run_suite(conns[i], suite, scopes[i], runners[i], "gx")

        def serial() -> None:
            for i in range(len(scopes)):
                one(i)

        def parallel() -> None:
            threads = [threading.Thread(target=one, args=(i,)) for i in range(len(scopes))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        return median(serial, repeat), median(parallel, repeat)
    finally:
        for r in runners:
            r.close()
        for c in conns:
            c.close()


def check_agreement(hand: tuple, outcomes) -> None:
    """Both must find the same: a benchmark of two different answers measures nothing."""
    row_count, nulls, not_boolean, duplicated_groups, old_unverified = hand
    got = {o.name.split(".", 1)[1]: o for o in outcomes}
    assert got["expect_table_row_count_to_be_between"].observed == row_count
    assert got["expect_column_values_to_not_be_null[email_verified]"].observed == nulls
    assert got["expect_column_values_to_be_in_set[email_verified]"].observed == not_boolean
    assert (got["expect_column_values_to_be_unique[verification_token]"].observed == 0) == (duplicated_groups == 0)
    assert got["unexpected_rows_expectation"].observed == old_unverified


def timed_pair(a, b, repeat: int) -> tuple[float, float]:
    """Medians of a and b, run alternately so that drift in the machine hits both alike."""
    a(), b()
    ta, tb = [], []
    for _ in range(repeat):
        for fn, times in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb)


def median(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


if __name__ == "__main__":
    main()
