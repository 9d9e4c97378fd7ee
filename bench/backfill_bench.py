"""Backfill benchmark: our migration against the raw SQL making the same change, same server.

    .venv/bin/python bench/backfill_bench.py            # 1,000,000 rows; RSS at 500k and 1M
    .venv/bin/python bench/backfill_bench.py --big      # 5,000,000 rows; RSS at 500k and 5M

The change: add `email_domain text NOT NULL`, filled from `lower(split_part(email, '@', 2))` for
every row (so the raw UPDATE and the backfill write exactly the same rows).  The raw script is

    ALTER TABLE users ADD COLUMN email_domain text;
    UPDATE users SET email_domain = lower(split_part(email, '@', 2));
    ALTER TABLE users ALTER COLUMN email_domain SET NOT NULL;

Everything runs in a fresh database it drops at the end.  It prints figures and checks nothing:
1. rows/s of the raw single-statement UPDATE and of our backfill step, per batch size;
2. 4 clients (point SELECT + UPDATE by key, one transaction each, threads in a separate
   process) measured idle, while the raw script runs and while our whole migration runs:
   TPS, p50, p99, max latency, failed transactions;
3. end-to-end wall time of the five steps through MigrationEngine against the raw script;
4. peak RSS of a process running our migration at two table sizes.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from migration_dags.engine import MigrationEngine  # noqa: E402
from migration_dags.spec import MigrationSettings, load_migration  # noqa: E402
from migration_dags.steps import STEPS  # noqa: E402

SERVER = os.environ.get("MIGRATION_DAGS_TEST_SERVER", "postgresql://postgres@127.0.0.1:5432/postgres")
UP = "lower(split_part(email, '@', 2))"
RAW_SCRIPT = [
    "ALTER TABLE users ADD COLUMN email_domain text",
    f"UPDATE users SET email_domain = {UP}",
    "ALTER TABLE users ALTER COLUMN email_domain SET NOT NULL",
]
MIGRATION = """name: add_email_domain
tables: [users]
settings: {{{settings}}}
operations:
  - add_column:
      table: users
      column: {{name: email_domain, type: text, nullable: false}}
      up: "lower(split_part(email, '@', 2))"
"""


# -- database ------------------------------------------------------------------------------------
def url_for(db: str) -> str:
    base, _, _ = SERVER.rpartition("/")
    return f"{base}/{db}"


def create_database(name: str) -> str:
    with psycopg.connect(SERVER, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{name}"')
    return url_for(name)


def drop_database(name: str) -> None:
    with psycopg.connect(SERVER, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_users(url: str, rows: int) -> None:
    """A fresh `users` of `rows` rows (PK + one secondary index), vacuumed like a settled table."""
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("DROP SCHEMA IF EXISTS migration_dags CASCADE")
        c.execute("DROP SCHEMA IF EXISTS migration_dags_backup CASCADE")
        c.execute("DROP TABLE IF EXISTS users")
        c.execute("""CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, name text,
                     created_at timestamptz NOT NULL, score int)""")
        c.execute(f"""INSERT INTO users SELECT g, 'user' || g || '@Example' || (g % 97) || '.com',
                      'Name ' || g, now() - (g % 1000) * interval '1 day', g % 1000
                      FROM generate_series(1, {int(rows)}) g""")
        c.execute("CREATE INDEX users_email_idx ON users (email)")
        c.execute("VACUUM ANALYZE users")
        c.execute("CHECKPOINT")


def engine(url: str, folder: Path, settings: str = "", log=lambda _m: None) -> MigrationEngine:
    path = folder / "add_email_domain.yaml"
    path.write_text(MIGRATION.format(settings=settings))
    return MigrationEngine(load_migration(path), url, log=log)


RAW_LABELS = ("ADD COLUMN", "UPDATE", "SET NOT NULL")


def run_raw_script(url: str) -> dict[str, tuple[float, float]]:
    """Each statement's (start, end) on the monotonic clock."""
    times = {}
    with psycopg.connect(url, autocommit=True) as c:
        for label, sql in zip(RAW_LABELS, RAW_SCRIPT):
            t = time.monotonic()
            c.execute(sql)
            times[label] = (t, time.monotonic())
    return times


def run_migration(url: str, folder: Path, settings: str = "", log=lambda _m: None) -> dict[str, tuple[float, float]]:
    """Each step's (start, end) on the monotonic clock."""
    eng = engine(url, folder, settings, log)
    times = {}
    for step in STEPS:
        t = time.monotonic()
        eng.up(step)
        times[step] = (t, time.monotonic())
    return times


def durations(times: dict[str, tuple[float, float]]) -> str:
    return ", ".join(f"{k} {b - a:.2f}s" for k, (a, b) in times.items())


# -- client load -----------------------------------------------------------------------------------
def _client(url: str, max_key: int, stop, out: list, seed: int) -> None:
    rnd = random.Random(seed)
    conn = psycopg.connect(url, autocommit=True)
    while not stop.is_set():
        key = rnd.randint(1, max_key)
        t0 = time.monotonic()
        try:
            with conn.transaction():
                conn.execute("SELECT email, score FROM users WHERE id = %s", (key,)).fetchone()
                conn.execute("UPDATE users SET score = score + 1 WHERE id = %s", (key,))
            out.append((t0, time.monotonic() - t0, True))
        except psycopg.Error as exc:
            out.append((t0, time.monotonic() - t0, False))
            print(f"  client error: {str(exc).splitlines()[0]}", file=sys.stderr)
            if conn.closed or conn.broken:
                conn = psycopg.connect(url, autocommit=True)
    conn.close()


def _server_sampler(url: str, stop, out: list) -> None:
    """Every 100 ms: checkpoints started so far (server-wide) and sessions busy in other
    databases: other tenants of a shared server show up here."""
    with psycopg.connect(url, autocommit=True) as c:
        while not stop.wait(0.1):
            out.append((time.monotonic(), *c.execute(
                """SELECT (SELECT checkpoints_req + checkpoints_timed FROM pg_stat_bgwriter),
                          (SELECT count(*) FROM pg_stat_activity WHERE state = 'active'
                           AND datname IS DISTINCT FROM current_database())""").fetchone()))


def _load_process(url: str, clients: int, max_key: int, seconds: float, pipe) -> None:
    stop = threading.Event()
    outs: list[list] = [[] for _ in range(clients)]
    threads = [threading.Thread(target=_client, args=(url, max_key, stop, outs[i], i))
               for i in range(clients)]
    server: list = []
    threads.append(threading.Thread(target=_server_sampler, args=(url, stop, server)))
    for t in threads:
        t.start()
    pipe.send(("started", time.monotonic()))
    pipe.poll(seconds)  # stop when told, or after `seconds` at the latest
    stop.set()
    for t in threads:
        t.join()
    pipe.send(("samples", ([s for o in outs for s in o], server)))


class Load:
    """4 clients in a separate process (so our process's threads do not share their GIL)."""

    def __init__(self, url: str, clients: int, max_key: int, max_seconds: float):
        ctx = mp.get_context("spawn")
        self.pipe, child = ctx.Pipe()
        self.proc = ctx.Process(target=_load_process, args=(url, clients, max_key, max_seconds, child))

    def __enter__(self) -> "Load":
        self.proc.start()
        _tag, self.started = self.pipe.recv()
        return self

    def stop(self) -> list[tuple[float, float, bool]]:
        self.pipe.send("stop")
        _tag, samples = self.pipe.recv()
        self.proc.join()
        return samples

    def __exit__(self, *exc) -> None:
        if self.proc.is_alive():
            self.proc.kill()


def window_stats(load, t0: float, t1: float) -> dict:
    samples, server = load
    inside = [s for s in samples if t0 <= s[0] < t1]
    ok = sorted(lat for _t, lat, good in inside if good)
    failed = sum(1 for _t, _lat, good in inside if not good)
    span = max(t1 - t0, 1e-9)
    around = [x for x in server if t0 <= x[0] <= t1]
    out = {"failed": failed, "n": len(ok), "s": span,
           "checkpoints": (around[-1][1] - around[0][1]) if len(around) > 1 else 0,
           "others": (sum(x[2] for x in around) / len(around)) if around else 0.0}
    if not ok:
        return {**out, "tps": 0.0, "p50": 0.0, "p99": 0.0, "max": 0.0}
    return {
        **out,
        "tps": len(ok) / span,
        "p50": ok[len(ok) // 2] * 1000,
        "p99": ok[min(len(ok) - 1, int(len(ok) * 0.99))] * 1000,
        "max": ok[-1] * 1000,
    }


def fmt_stats(label: str, s: dict) -> str:
    return (f"  {label:<34} {s['s']:6.1f} s  TPS {s['tps']:6.0f}  p50 {s['p50']:5.1f} ms  "
            f"p99 {s['p99']:6.1f} ms  max {s['max']:7.1f} ms  failed {s['failed']}  "
            f"[checkpoints {s['checkpoints']}, other dbs' active sessions {s['others']:.1f}]")


def stalls(load, t0: float, t1: float, over_ms: float) -> tuple[int, float]:
    """Slow transactions (> over_ms) that overlap one another on 3+ clients at once: the whole
    server stalled (I/O, a checkpoint), not a wait on one row.  Returns (how many of the slow
    ones were such, max latency of the others)."""
    samples, _server = load
    slow = [(t, t + lat) for t, lat, good in samples if good and t0 <= t < t1 and lat * 1000 > over_ms]
    shared, rest = 0, 0.0
    for a, b in slow:
        overlapping = sum(1 for c, d in slow if c < b and a < d)
        if overlapping >= 3:
            shared += 1
        else:
            rest = max(rest, (b - a) * 1000)
    return shared, rest


def worst_second(load, t0: float, t1: float) -> str:
    """The second with the lowest TPS inside the window (averages hide stalls)."""
    samples, _server = load
    buckets: dict[int, int] = {}
    for t, _lat, good in samples:
        if t0 <= t < t1 and good:
            buckets[int(t - t0)] = buckets.get(int(t - t0), 0) + 1
    full = [buckets.get(i, 0) for i in range(int(t1 - t0))]
    return f"lowest per-second TPS {min(full) if full else 0}"


def under_load(url: str, rows: int, clients: int, idle_s: float, work, cap_s: float):
    with Load(url, clients, rows, cap_s) as load:
        time.sleep(0.5)  # connections warm
        t_idle = time.monotonic()
        time.sleep(idle_s)
        t_work = time.monotonic()
        detail = work()
        t_end = time.monotonic()
        time.sleep(0.3)
        samples = load.stop()
    return (window_stats(samples, t_idle, t_work), window_stats(samples, t_work, t_end),
            worst_second(samples, t_work, t_end), (t_work, t_end), detail, samples)


# -- RSS --------------------------------------------------------------------------------------------
def rss_child(url: str, folder: str) -> None:
    run_migration(url, Path(folder))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def peak_rss_kib(url: str, folder: Path) -> int:
    out = subprocess.run([sys.executable, __file__, "--rss-child", url, str(folder)],
                         check=True, capture_output=True, text=True).stdout
    return int(out.strip().splitlines()[-1])


# -- main ---------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--big", action="store_true", help="5,000,000 rows instead of 1,000,000")
    ap.add_argument("--rows", type=int, help="table size (overrides --big)")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--idle-seconds", type=float, default=8.0)
    ap.add_argument("--batch-sizes", default="1000,5000,10000,20000")
    ap.add_argument("--repeat", type=int, default=1, help="runs per batch size (medians printed)")
    ap.add_argument("--only", default="", help="comma list of sections: rate,load,e2e,rss")
    ap.add_argument("--rss-child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        return rss_child(*args.rss_child)

    rows = args.rows or (5_000_000 if args.big else 1_000_000)
    sections = set(args.only.split(",")) if args.only else {"rate", "load", "e2e", "rss"}
    db = f"mdg_bench_{os.getpid()}"
    url = create_database(db)
    folder = Path(tempfile.mkdtemp(prefix="mdg_bench_"))
    cpu = os.cpu_count()
    with psycopg.connect(url) as c:
        version = c.execute("SHOW server_version").fetchone()[0]
    print(f"backfill benchmark: {rows:,} rows, {args.clients} clients, PostgreSQL {version}, "
          f"{cpu} CPUs, database {db} (dropped at the end)")
    found: dict[str, str] = {}
    try:
        if "rate" in sections:
            found.update(section_rate(url, rows, folder, args))
        if "load" in sections:
            found.update(section_load(url, rows, folder, args))
        if "e2e" in sections:
            found.update(section_e2e(url, rows, folder))
        if "rss" in sections:
            found.update(section_rss(url, rows, folder, args))
    finally:
        drop_database(db)
    if found:
        print("\ntargets")
        for line in found.values():
            print("  " + line)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def section_rate(url, rows, folder, args) -> dict[str, str]:
    print("\n1. rows/s, idle server (fresh vacuumed table each run; our backfill is the engine's "
          "backfill step with its default throttle)")
    default = MigrationSettings().batch_size
    ratios = {}
    raw = []
    for _ in range(args.repeat):
        make_users(url, rows)
        with psycopg.connect(url, autocommit=True) as c:
            c.execute(RAW_SCRIPT[0])
            t = time.monotonic()
            c.execute(RAW_SCRIPT[1])
            raw.append(time.monotonic() - t)
    raw_rate = rows / statistics.median(raw)
    print(f"  raw single UPDATE                   {statistics.median(raw):6.2f} s  {raw_rate:9,.0f} rows/s")
    for size in [int(x) for x in args.batch_sizes.split(",")]:
        runs = []
        for _ in range(args.repeat):
            make_users(url, rows)
            eng = engine(url, folder, f"batch_size: {size}")
            eng.up("backup")
            eng.up("schema_change")
            t = time.monotonic()
            eng.up("backfill")
            runs.append(time.monotonic() - t)
        rate = rows / statistics.median(runs)
        ratios[size] = rate / raw_rate
        print(f"  backfill step, batch {size:>6,}        {statistics.median(runs):6.2f} s  "
              f"{rate:9,.0f} rows/s  ratio {rate / raw_rate:4.2f}x raw")
    best = max(ratios, key=ratios.get)
    out = {"best": f"fastest batch size in this run: {best:,} (default {default:,})"}
    if default in ratios:
        out["rate"] = (f"backfill >= 1.0x raw UPDATE rows/s: {ratios[default]:.3f}x at the default "
                       f"batch size: {verdict(ratios[default] >= 1.0)}")
    return out


def section_load(url, rows, folder, args) -> dict[str, str]:
    print(f"\n2. {args.clients} clients (point SELECT + UPDATE by key per transaction), "
          f"{args.idle_seconds:g} s idle window before each run")

    def raw_work():
        return run_raw_script(url)

    def ours_work():
        return run_migration(url, folder)

    results = {}
    for label, work in (("(a) raw ALTER; UPDATE; SET NOT NULL", raw_work),
                        ("(b) our migration, 5 steps", ours_work)):
        make_users(url, rows)
        idle, during, worst, window, detail, samples = under_load(
            url, rows, args.clients, args.idle_seconds, work, cap_s=900)
        results[label] = (idle, during, samples, window)
        print(fmt_stats("idle before " + label[:3], idle))
        print(fmt_stats(label, during) + f"  ({worst})")
        for part, (a, b) in detail.items():
            print(fmt_stats(f"    during {part}", window_stats(samples, a, b)))
    idle_b, during_b, load_b, window_b = results["(b) our migration, 5 steps"]
    idle_max = idle_b["max"]
    shared, rest = stalls(load_b, *window_b, over_ms=2 * idle_max)
    print(f"  our migration: failed {during_b['failed']}, max latency {during_b['max']:.1f} ms = "
          f"{during_b['max'] / max(idle_max, 1e-9):.2f}x its idle max ({idle_max:.1f} ms); "
          f"TPS {100 * during_b['tps'] / max(idle_b['tps'], 1e-9):.0f}% of idle")
    print(f"    transactions over 2x idle max: {shared} in server-wide stalls (3+ clients slow at "
          f"once), the others' max {rest:.1f} ms = {rest / max(idle_max, 1e-9):.2f}x idle max")
    ratio = during_b["max"] / max(idle_max, 1e-9)
    return {
        "failed": f"0 failed client transactions during our migration: {during_b['failed']}: "
                  f"{verdict(during_b['failed'] == 0)}",
        "latency": f"client max latency <= 2x idle max during our migration: {ratio:.2f}x: "
                   f"{verdict(ratio <= 2.0)}",
    }


def section_e2e(url, rows, folder) -> dict[str, str]:
    print("\n3. end-to-end wall time, idle server")
    make_users(url, rows)
    t = time.monotonic()
    raw = run_raw_script(url)
    raw_s = time.monotonic() - t
    make_users(url, rows)
    t = time.monotonic()
    ours = run_migration(url, folder)
    ours_s = time.monotonic() - t
    print(f"  raw SQL script                      {raw_s:6.2f} s  ({durations(raw)})")
    print(f"  our migration, 5 steps              {ours_s:6.2f} s  ({durations(ours)})")
    print(f"  ratio                               {ours_s / raw_s:6.2f}x")
    return {"e2e": f"end-to-end <= 1.5x raw SQL: {ours_s / raw_s:.2f}x: "
                   f"{verdict(ours_s / raw_s <= 1.5)}"}


def section_rss(url, rows, folder, args) -> dict[str, str]:
    sizes = [500_000, rows]
    print(f"\n4. peak RSS of a process running our migration (5 steps), at {sizes[0]:,} and "
          f"{sizes[-1]:,} rows" + ("" if rows >= 5_000_000 else " (not 5M: that needs --big)"))
    peaks = []
    for n in sizes:
        make_users(url, n)
        kib = peak_rss_kib(url, folder)
        peaks.append(kib)
        print(f"  {n:>10,} rows                     {kib / 1024:6.1f} MiB")
    growth = peaks[-1] / peaks[0]
    return {"rss": f"peak RSS flat in table size: {growth:.2f}x from {sizes[0]:,} to {sizes[-1]:,} "
                   f"rows: {verdict(growth <= 1.1)}"}


if __name__ == "__main__":
    main()
