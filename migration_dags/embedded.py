"""The embedded PostgreSQL (pgserver's wheel) used when no database URL is configured.

It is started once in a local folder and left running (cleanup_mode=None): the CLI, the Dagster
webserver and its run workers are separate processes that must share one server, and with
cleanup_mode='stop' the first process to exit would stop it under the others.
`migration-dags embedded stop` stops it.
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


def stop_embedded(folder: Path | None = None) -> None:
    import subprocess

    import pgserver

    folder = Path(folder or embedded_dir())
    if not (folder / "postmaster.pid").exists():
        return
    pg_ctl = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_ctl"
    subprocess.run([str(pg_ctl), "-D", str(folder), "-m", "fast", "stop"], check=False,
                   capture_output=True)
