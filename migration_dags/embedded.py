"""The embedded PostgreSQL (pgserver's wheel) used when no database URL is configured.

It is started once in a local folder and left running (cleanup_mode=None): the CLI, the Dagster
webserver and its run workers are separate processes that must share one server, and with
cleanup_mode='stop' the first process to exit would stop it under the others.
`stop_embedded()` stops it; `migration-dags embedded status|stop` are the user's handles on it.

    python -m migration_dags.embedded url|status|stop [--dir DIR]   (what scripts/ use)
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from .settings import embedded_dir


def _pgserver():
    """pgserver, imported without platformdirs' RuntimeDirWarning: pgserver asks for a runtime
    folder at import time, and on a machine without XDG_RUNTIME_DIR (containers, CI, ssh as
    root) platformdirs warns about a fallback that works. Not something the user caused."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import pgserver

    return pgserver


def embedded_server(folder: Path | None = None):
    pgserver = _pgserver()
    folder = Path(folder or embedded_dir())
    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        return pgserver.get_server(folder, cleanup_mode=None)


def embedded_database_url(folder: Path | None = None, database: str = "postgres") -> str:
    return embedded_server(folder).get_uri(database)


@dataclass(frozen=True)
class EmbeddedStatus:
    folder: Path
    pid: int | None  # the postmaster's, when one runs there

    @property
    def running(self) -> bool:
        return self.pid is not None

    def as_dict(self) -> dict:
        return {"folder": str(self.folder), "running": self.running, "pid": self.pid}


def embedded_status(folder: Path | None = None) -> EmbeddedStatus:
    """Whether a postmaster runs in `folder` (read from its postmaster.pid; starts nothing)."""
    folder = Path(folder or embedded_dir()).resolve()
    pid = _postmaster_pid(folder)
    return EmbeddedStatus(folder, pid if pid is not None and _alive(pid) else None)


def stop_embedded(folder: Path | None = None) -> bool:
    """Stop the embedded server in `folder`, if one runs there. Returns whether one was stopped.

    pg_ctl refuses to run as root (and as root pgserver runs the server as its own user), so we
    signal the postmaster directly: SIGINT is PostgreSQL's "fast" shutdown, and the postmaster
    waits for its children before it exits, so when it is gone no process of it is left."""
    pid = _postmaster_pid(Path(folder or embedded_dir()))
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGINT)
    except OSError:
        return False
    for _ in range(300):
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return not _alive(pid)


def _postmaster_pid(folder: Path) -> int | None:
    try:
        return int((folder / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    # a zombie (exited, not yet reaped by its parent) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m migration_dags.embedded")
    parser.add_argument("action", choices=["url", "status", "stop"])
    parser.add_argument("--dir", type=Path, default=None, help="data folder (default: settings)")
    args = parser.parse_args(argv)
    if args.action == "url":  # starts it if needed
        print(embedded_database_url(args.dir))
    elif args.action == "status":
        status = embedded_status(args.dir)
        print(f"{'running (pid ' + str(status.pid) + ')' if status.running else 'not running'}"
              f" in {status.folder}")
    else:
        print("stopped" if stop_embedded(args.dir) else "was not running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
