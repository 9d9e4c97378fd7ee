"""PostgreSQL's client programs (pg_dump) in a version that can read a given server.

pg_dump refuses a server newer than itself, and the machine's /usr/bin/pg_dump (Debian's wrapper
picks the newest installed cluster's) need not match the embedded PostgreSQL 16 from pgserver.
So we look in the places a pg_dump can be and take the oldest one that is at least the server's
major version: pgserver's own bin folder, Debian's /usr/lib/postgresql/N/bin, then PATH.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from functools import lru_cache


class ToolNotFoundError(RuntimeError):
    pass


def pgserver_bin_dir() -> str | None:
    """pgserver's bundled client tools, if the wheel is installed (no server is started)."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("pgserver")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    folder = os.path.join(os.path.dirname(spec.origin), "pginstall", "bin")
    return folder if os.path.isdir(folder) else None


def _candidates(program: str) -> list[str]:
    found = []
    bundled = pgserver_bin_dir()
    if bundled:
        found.append(os.path.join(bundled, program))
    found += sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{program}"))
    on_path = shutil.which(program)
    if on_path:
        found.append(on_path)
    return [p for p in dict.fromkeys(found) if os.access(p, os.X_OK)]


@lru_cache(maxsize=None)
def _major_version(path: str) -> int | None:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(match.group(1)) if match else None


def client_program(program: str, server_major: int) -> str:
    """The path of `program` (e.g. "pg_dump") that can talk to a server of `server_major`: the
    oldest installed major version not older than the server's."""
    usable = [(v, p) for p in _candidates(program)
              if (v := _major_version(p)) is not None and v >= server_major]
    if not usable:
        raise ToolNotFoundError(
            f"no {program} of PostgreSQL {server_major} or newer found (looked in pgserver's "
            f"bin folder, /usr/lib/postgresql/*/bin and PATH); install the PostgreSQL "
            f"{server_major} client tools"
        )
    return min(usable)[1]


def server_major_version(conn) -> int:
    """The major version of the server `conn` (a psycopg connection) is connected to."""
    return conn.info.server_version // 10000
