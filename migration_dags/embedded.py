"""The embedded PostgreSQL (pgserver's wheel) used when no database URL is configured.

It is started once in a local folder and left running (cleanup_mode=None): the CLI, the Dagster
webserver and its run workers are separate processes that must share one server, and with
cleanup_mode='stop' the first process to exit would stop it under the others.
`stop_embedded()` stops it.
"""

from __future__ import annotations

from pathlib import Path

from .settings import embedded_dir


def embedded_server(folder: Path | None = None):
    import pgserver

    folder = Path(folder or embedded_dir())
    folder.mkdir(parents=True, exist_ok=True)
    return pgserver.get_server(folder, cleanup_mode=None)


def embedded_database_url(folder: Path | None = None, database: str = "postgres") -> str:
    return embedded_server(folder).get_uri(database)


def stop_embedded(folder: Path | None = None) -> bool:
    """Stop the embedded server in `folder`, if one runs there. Returns whether one was stopped.

    pg_ctl refuses to run as root (and as root pgserver runs the server as its own user), so we
    signal the postmaster directly: SIGINT is PostgreSQL's "fast" shutdown."""
    import os
    import signal
    import time

    pid_file = Path(folder or embedded_dir()) / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGINT)
    except (OSError, ValueError, IndexError):
        return False
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except OSError:
            return True
        time.sleep(0.1)
    return True
