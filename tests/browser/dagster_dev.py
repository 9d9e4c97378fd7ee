"""`dagster dev` for a browser test: on a free port, with its own DAGSTER_HOME, stopped by its
process group (started from a non-interactive shell it ignores SIGINT and SIGTERM, FACTS.md).

Imported as `browser.dagster_dev` (tests/ is on sys.path through tests/conftest.py).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pg_server import REPO

STARTUP_S = 120  # ~19 s on a quiet 2-core machine; much more while other tests run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def dagster_dev(
    dagster_home: Path, migrations_dir: Path, database_url: str, log: Path,
    extra_env: dict[str, str] | None = None,
) -> Iterator[str]:
    """Yield the UI's base URL once it answers; stop the whole process group afterwards."""
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home),
           "MIGRATION_DAGS_MIGRATIONS_DIR": str(migrations_dir),
           "MIGRATION_DAGS_DATABASE_URL": database_url,
           "MIGRATION_DAGS_ROLLBACK_SENSOR_INTERVAL_S": "5", **(extra_env or {})}
    dagster = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" / "dagster"
    argv = [str(dagster) if dagster.exists() else "dagster", "dev", "-w", str(REPO / "workspace.yaml"),
            "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_answering(url, proc, log)
        yield url
    finally:
        _stop(proc)


def _wait_until_answering(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {proc.returncode}; its output: {log}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"dagster dev did not answer within {STARTUP_S} s; its output: {log}")


def _stop(proc: subprocess.Popen) -> None:
    for sig, wait_s in ((signal.SIGINT, 15), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue
