"""Backfill benchmark: `migration-dags up` against the raw SQL making the same change, under the
same application traffic as the acceptance figures (/work/shared/tools/traffic.py, open loop,
800 tx/s in all from 4 clients, each a point read + update by id).

    .venv/bin/python bench/backfill_bench.py                       # 1M and 10M rows, 2 runs each
    .venv/bin/python bench/backfill_bench.py --rows 1000000 --runs 1

The change: add `email_domain text NOT NULL` filled from `lower(split_part(email, '@', 2))` for
every row, and index it.  The raw script:

    ALTER TABLE users ADD COLUMN email_domain text;
    UPDATE users SET email_domain = lower(split_part(email, '@', 2));
    ALTER TABLE users ALTER COLUMN email_domain SET NOT NULL;
    CREATE INDEX CONCURRENTLY users_email_domain_idx ON users (email_domain);

Ours: the CLI, `up` (expand) then `complete --force` (contract at once: the traffic writes the
old shape, so without --force complete would wait for it to stop), each a process of its own,
all five steps, every run in one DAGSTER_HOME set up as migration-dags sets up a home it creates
(settings.write_dagster_yaml) and opened once before the first timed run, as a user's home is
after their first command (a brand-new home costs Dagster's SQLite setup once more: printed
apart).  Every measurement runs on a fresh copy of one template database, so no run inherits
another's dead rows.  Per size and run it prints one row: wall time of raw and ours, the fixed
cost (the same `up` on a 1,000-row table) and ours less it, the backup and backfill steps' own
seconds, clients' p50/p99/max idle, during raw and during ours, failed client transactions,
and peak RSS of our process; then, per run, the issue's reference loop (2,000-key range UPDATEs
of the new column, synchronous_commit off, nothing else) under the same traffic: the floor this
machine sets for a batched backfill.  It prints figures and checks nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
SERVER = os.environ.get("MIGRATION_DAGS_TEST_SERVER", "postgresql://postgres@127.0.0.1:5432/postgres")
TRAFFIC = os.environ.get("TRAFFIC", "/work/shared/tools/traffic.py")
CLIENTS, RATE = 4, 800
IDLE_S = 8.0
UP = "lower(split_part(email, '@', 2))"
RAW_SCRIPT = [
    "ALTER TABLE users ADD COLUMN email_domain text",
    f"UPDATE users SET email_domain = {UP}",
    "ALTER TABLE users ALTER COLUMN email_domain SET NOT NULL",
    "CREATE INDEX CONCURRENTLY users_email_domain_idx ON users (email_domain)",
]
MIGRATION = f"""name: add_email_domain
tables: [users]
operations:
  - add_column:
      table: users
      column: {{name: email_domain, type: text, nullable: false}}
      up: "{UP}"
  - create_index:
      name: users_email_domain_idx
      table: users
      columns: [email_domain]
"""
STEP_DONE = re.compile(r"(\w+) up: done, (\d+) rows, ([\d.]+) s")


# -- databases -------------------------------------------------------------------------------------
def url_for(db: str) -> str:
    return SERVER.rpartition("/")[0] + "/" + db


def admin(*statements: str) -> None:
    with psycopg.connect(SERVER, autocommit=True) as c:
        for s in statements:
            c.execute(s)


def make_template(name: str, rows: int) -> None:
    admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    with psycopg.connect(url_for(name), autocommit=True) as c:
        c.execute("""CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL,
                     theme text NOT NULL DEFAULT 'light', created_at timestamptz NOT NULL DEFAULT now())""")
        step = 1_000_000
        for start in range(1, rows + 1, step):
            c.execute("""INSERT INTO users (email, created_at)
                         SELECT 'user' || g || '@Example' || (g %% 97) || '.com',
                                now() - make_interval(days => (g %% 900)::int)
                         FROM generate_series(%s::bigint, %s::bigint) g""",
                      (start, min(start + step - 1, rows)))
        c.execute("VACUUM (ANALYZE, FREEZE) users")


def fresh_copy(template: str, name: str) -> str:
    admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
          f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    with psycopg.connect(url_for(name), autocommit=True) as c:
        c.execute("CHECKPOINT")
    return url_for(name)


def drop(*names: str) -> None:
    admin(*[f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in names])


# -- traffic ---------------------------------------------------------------------------------------
class Traffic:
    """traffic.py in a process of its own, open loop, for the length of a `with` block."""

    def __init__(self, url: str, rows: int):
        self.dir = tempfile.mkdtemp(prefix="bench-traffic-")
        self.stop, self.out = f"{self.dir}/stop", f"{self.dir}/out.json"
        self.cmd = [sys.executable, TRAFFIC, url, str(rows), self.stop, self.out,
                    str(CLIENTS), str(RATE)]
        self.result: dict = {}

    def __enter__(self) -> "Traffic":
        self.proc = subprocess.Popen(self.cmd)
        time.sleep(1.0)  # connected and steady
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(0.5)
        Path(self.stop).touch()
        self.proc.wait(timeout=120)
        self.result = json.loads(Path(self.out).read_text())


def lat(r: dict) -> str:
    return f"{r['p50_ms']}/{r['p99_ms']}/{r['max_ms']}"


# -- the two ways ----------------------------------------------------------------------------------
def run_raw(url: str) -> float:
    with psycopg.connect(url, autocommit=True) as c:
        started = time.monotonic()
        for s in RAW_SCRIPT:
            c.execute(s)
        return time.monotonic() - started


def run_reference_loop(url: str, rows: int, size: int = 2000) -> float:
    """The issue's reference: a bare loop of `size`-key range UPDATEs of the new column, each its
    own transaction with synchronous_commit off, no trigger, no ledger, no backup, no
    validation: the floor a batched backfill can reach on this machine under this traffic."""
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("ALTER TABLE users ADD COLUMN email_domain text")
        started = time.monotonic()
        for low in range(0, rows, size):
            with c.transaction():
                c.execute("SET LOCAL synchronous_commit = off")
                c.execute(f"UPDATE users SET email_domain = {UP} WHERE id > %s AND id <= %s",
                          (low, low + size))
        c.execute("SELECT 1")
        return time.monotonic() - started


def new_dagster_home(opened: bool = True) -> str:
    """A DAGSTER_HOME with the dagster.yaml migration-dags writes for a home it creates; opened:
    with its SQLite files made (what any first command does)."""
    sys.path.insert(0, str(ROOT))
    from migration_dags.settings import write_dagster_yaml

    home = tempfile.mkdtemp(prefix="bench-dh-")
    write_dagster_yaml(Path(home))
    if opened:
        subprocess.run([sys.executable, "-c", "import dagster; dagster.DagsterInstance.get()"],
                       env={**os.environ, "DAGSTER_HOME": home}, check=True)
    return home


HOME = None


# What a user runs: under traffic (which writes the old shape) `up` expands and `complete
# --force` contracts at once, as the raw script does; with no traffic, `up --complete` does both.
EXPAND_CONTRACT = (["up", "add_email_domain"], ["complete", "add_email_domain", "--force"])
ALL_AT_ONCE = (["up", "add_email_domain", "--complete"],)


def run_ours_rss(url: str, migrations: Path, home: str | None = None,
                 commands=EXPAND_CONTRACT) -> tuple[dict, float]:
    """Our commands, each in a process of its own: wall time (all of them), each step's seconds,
    and the largest peak RSS (MiB) of those processes, from their own rusage."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DAGSTER_HOME": home or HOME}
    wall, steps, rss = 0.0, {}, 0.0
    for command in commands:
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "migration_dags.cli", "--database-url", url,
             "--migrations-dir", str(migrations), *command],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        err = proc.stderr.read()
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall += time.monotonic() - started
        if os.waitstatus_to_exitcode(status):
            raise SystemExit(f"migration-dags {' '.join(command)} failed:\n{err}")
        steps.update({m.group(1): float(m.group(3)) for m in STEP_DONE.finditer(err)})
        rss = max(rss, usage.ru_maxrss / 1024)
    return {"wall": wall, "steps": steps}, rss


# -- main ------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--keep-template", action="store_true", help="reuse bench_tpl_<rows> if present")
    args = ap.parse_args()
    migrations = Path(tempfile.mkdtemp(prefix="bench-migrations-"))
    (migrations / "add_email_domain.yaml").write_text(MIGRATION)

    global HOME
    HOME = new_dagster_home()
    make_template("bench_tpl_small", 1000)
    first, _rss = run_ours_rss(fresh_copy("bench_tpl_small", "bench_run"), migrations,
                               home=new_dagster_home(opened=False), commands=ALL_AT_ONCE)
    print(f"first up --complete in a brand-new DAGSTER_HOME (1,000 rows): {first['wall']:.2f} s",
          flush=True)
    at_once, fixed = [], []
    for _ in range(max(args.runs, 3)):
        ours, _rss = run_ours_rss(fresh_copy("bench_tpl_small", "bench_run"), migrations,
                                  commands=ALL_AT_ONCE)
        at_once.append(ours["wall"])
        ours, _rss = run_ours_rss(fresh_copy("bench_tpl_small", "bench_run"), migrations)
        fixed.append(ours["wall"])
    print("fixed cost, five-step `up --complete` via the CLI, 1,000 rows: "
          + ", ".join(f"{f:.2f} s" for f in at_once), flush=True)
    print("fixed cost, `up` then `complete --force` (two processes), 1,000 rows: "
          + ", ".join(f"{f:.2f} s" for f in fixed), flush=True)
    fixed_s = sum(fixed) / len(fixed)

    header = ("rows", "run", "raw s", "ours s", "ours-fixed", "x raw", "backup s", "backfill s",
              "idle p50/p99/max ms", "raw p50/p99/max ms", "ours p50/p99/max ms",
              "failed idle/raw/ours", "RSS MiB")
    table, loops = [], []
    for rows in args.rows:
        template = f"bench_tpl_{rows}"
        exists = False
        if args.keep_template:
            with psycopg.connect(SERVER, autocommit=True) as c:
                exists = c.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                   (template,)).fetchone() is not None
        if not exists:
            t = time.monotonic()
            make_template(template, rows)
            print(f"{rows:,} rows: template built in {time.monotonic() - t:.0f} s", flush=True)
        for run in range(1, args.runs + 1):
            url = fresh_copy(template, "bench_run")
            with Traffic(url, rows) as idle:
                time.sleep(IDLE_S)
            with Traffic(url, rows) as during_raw:
                raw_s = run_raw(url)
            url = fresh_copy(template, "bench_run")
            with Traffic(url, rows) as during_loop:
                loop_s = run_reference_loop(url, rows)
            url = fresh_copy(template, "bench_run")
            with Traffic(url, rows) as during_ours:
                ours, rss = run_ours_rss(url, migrations)
            work = ours["wall"] - fixed_s
            i, r, o = idle.result, during_raw.result, during_ours.result
            loops.append(f"{rows:,} run {run}: reference loop (2,000-key UPDATEs, synchronous_commit "
                         f"off, nothing else) {loop_s:.1f} s, clients p50/p99/max "
                         f"{lat(during_loop.result)} ms, failed {during_loop.result['failed']}")
            row = (f"{rows:,}", str(run), f"{raw_s:.1f}", f"{ours['wall']:.1f}", f"{work:.1f}",
                   f"{work / raw_s:.2f}", f"{ours['steps'].get('backup', 0):.1f}",
                   f"{ours['steps'].get('backfill', 0):.1f}", lat(i), lat(r), lat(o),
                   f"{i['failed']}/{r['failed']}/{o['failed']}", f"{rss:.0f}")
            table.append(row)
            print("  ".join(row), flush=True)
        if not args.keep_template:
            drop(template)
    drop("bench_run", "bench_tpl_small")

    widths = [max(len(h), *(len(r[k]) for r in table)) for k, h in enumerate(header)]
    print()
    print(f"open loop {RATE} tx/s, {CLIENTS} clients; ours = up + complete --force; fixed cost "
          f"{fixed_s:.2f} s (mean of "
          f"{len(fixed)}); {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} cores; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    for r in table:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))
    for line in loops:
        print(line)


if __name__ == "__main__":
    main()
