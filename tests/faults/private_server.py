"""A private PostgreSQL 15 for tests that stop and restart the server (never the shared one):
a fresh cluster in a temporary folder on a free port, run as the `postgres` OS user when the
tests run as root (initdb refuses root)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

from pg_server import as_postgres

BIN = Path("/usr/lib/postgresql/15/bin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateServer:
    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="mdg_private_pg_"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.folder, "postgres")
        self._run(BIN / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync",
                  "-E", "UTF8")
        self.start()

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off")
        self._run(BIN / "pg_ctl", "-D", self.data, "-o", options, "-l", self.folder / "log",
                  "-w", "start")

    def stop_immediately(self) -> None:
        """Like a crash of the server: no checkpoint, every session cut."""
        self._run(BIN / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def remove(self) -> None:
        try:
            self.stop_immediately()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _run(self, *argv) -> None:
        command = [str(a) for a in argv]
        if self._as_postgres:
            command = as_postgres(command)
        subprocess.run(command, check=True, capture_output=True, cwd=self.folder)
