"""The PostgreSQL the tests use, and fresh databases on it (a plain module: import it, never a conftest).

The server is MIGRATION_DAGS_TEST_SERVER (a libpq URL of a database to connect to for CREATE
DATABASE), by default postgres at 127.0.0.1:5432.  scripts/test.sh starts it when it is not running.
A server that does not answer is an error (conftest stops the session before the first db test),
never a silent fall back to another one: a test run must say which server it proved things on.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from functools import lru_cache

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from migration_dags.db import display_url
from migration_dags.pg_tools import client_program, server_major_version

SERVER_URL = os.environ.get(
    "MIGRATION_DAGS_TEST_SERVER", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REPO = Path(__file__).resolve().parent.parent
_counter = itertools.count()


def _url_for(db: str) -> str:
    """SERVER_URL's server, database `db`: a key=value string, which every caller accepts."""
    return make_conninfo(SERVER_URL, dbname=db)


def create_database(prefix: str = "mdg_test") -> tuple[str, str]:
    name = f"{prefix}_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, _url_for(name)


def drop_database(name: str) -> None:
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def unreachable_reason() -> str | None:
    """None if the test server answers, else one line saying which server and why not."""
    try:
        psycopg.connect(SERVER_URL, connect_timeout=5).close()
    except psycopg.Error as exc:
        named = ("MIGRATION_DAGS_TEST_SERVER" if "MIGRATION_DAGS_TEST_SERVER" in os.environ
                 else "the default test server")
        return (f"{named} {display_url(SERVER_URL)} does not answer: {' '.join(str(exc).split())}; "
                "start it, or run scripts/test.sh (which finds or starts one)")
    return None


@lru_cache(maxsize=None)
def pg_dump() -> str:
    """A pg_dump that can read the test server (the embedded server is PostgreSQL 16, the
    machine's may be 15: /usr/bin/pg_dump is not always the right one)."""
    with psycopg.connect(SERVER_URL) as conn:
        return client_program("pg_dump", server_major_version(conn))


def as_postgres(command: list[str]) -> list[str]:
    """`command` run as the postgres OS user when we are root (initdb and pg_ctl refuse root).
    runuser lives in /usr/sbin, which a minimal PATH may leave out."""
    if os.geteuid() != 0:
        return command
    import shutil

    runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
    if runuser is None:
        raise RuntimeError("running as root needs runuser (util-linux) to start a private server")
    return [runuser, "-u", "postgres", "--", *command]
