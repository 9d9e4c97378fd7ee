"""Connections to the target database: every one autocommit, named after the tool, and a failure
to connect is a DatabaseUnavailableError (exit 5) that never shows the password.

A database URL is whatever libpq reads (`postgresql://user:pw@host:5432/db`, the socket form
`postgresql://user@/db?host=/run/dir`, or `host=... dbname=...` pairs), and SQLAlchemy's
`postgresql+driver://` spelling too. psycopg.conninfo does the reading, so a percent-encoded
password is decoded by the same rules libpq applies; one it cannot read is a DatabaseUrlError
(exit 2) before any connection is tried.

Every session leaves parallel workers to the application (NO_PARALLEL_WORKERS): a parallel scan
or index build of ours took the second of our machine's two cores, and the clients' p99/max under
800 tx/s went from 8-18/38-63 ms to 53-86/84-138 ms (bench/backfill_bench.py's traffic, three
runs each); our wall time did not change measurably. MIGRATION_DAGS_PARALLEL=server keeps the
server's settings.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ..errors import DatabaseUnavailableError, DatabaseUrlError
from ..settings import parallel_workers_wanted

APP_PREFIX = "migration-dags"
# the settings, as SET statements for our sessions and as libpq `options` for GX's (suites/)
NO_PARALLEL_SETTINGS = {"max_parallel_workers_per_gather": 0, "max_parallel_maintenance_workers": 0}
NO_PARALLEL_WORKERS = "; ".join(f"SET {k} = {v}" for k, v in NO_PARALLEL_SETTINGS.items())
NO_PARALLEL_OPTIONS = " ".join(f"-c {k}={v}" for k, v in NO_PARALLEL_SETTINGS.items())
HIDDEN = "***"
_POSTGRES_SCHEMES = ("postgresql", "postgres")


def libpq_url(url: str) -> str:
    """`url` as libpq reads it: a SQLAlchemy-style `postgresql+psycopg://` loses its driver; a
    string libpq cannot read is a DatabaseUrlError naming the fix."""
    scheme, separator, rest = url.partition("://")
    base, plus, _driver = scheme.partition("+")
    if separator and plus and base in _POSTGRES_SCHEMES:
        url = f"postgresql://{rest}"
    try:
        conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        shown = display_url(url)
        # libpq quotes a URL it cannot parse whole, password included
        raise DatabaseUrlError(shown, _one_line(exc).replace(url, shown)) from exc
    return url


def display_url(url: str) -> str:
    """The URL (or key=value string) without its password, for messages."""
    if "://" in url:
        return _url_without_password(url)
    try:
        parameters = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        # unreadable, so where a password would be is unknown: show it only if it names none
        return url if "password" not in url else HIDDEN
    if "password" not in parameters:
        return url
    return make_conninfo(**{**parameters, "password": HIDDEN})


def connect(url: str, application_name: str = APP_PREFIX) -> psycopg.Connection:
    conninfo = libpq_url(url)
    try:
        conn = psycopg.connect(
            conninfo, autocommit=True, application_name=application_name[:63], connect_timeout=10
        )
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailableError(display_url(url), _one_line(exc)) from exc
    if not parallel_workers_wanted():
        conn.execute(NO_PARALLEL_WORKERS)
    return conn


# SQLSTATEs of a session the server ended: admin_shutdown, crash_shutdown, cannot_connect_now
_SERVER_ENDED = ("57P01", "57P02", "57P03")


def is_connection_lost(exc: BaseException) -> bool:
    """Whether `exc` says the connection itself is gone (not a statement's own failure: a lock
    timeout or a cancel is an OperationalError too)."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = getattr(exc, "sqlstate", None)
    return state is None or state.startswith("08") or state in _SERVER_ENDED


def _url_without_password(url: str) -> str:
    try:
        parts = urlsplit(url)
        has_password = parts.password is not None
    except ValueError:  # a malformed host (an unclosed "[" of an IPv6 address): show no part of it
        return f"{url.partition('://')[0]}://{HIDDEN}"
    netloc, query = parts.netloc, parts.query
    if has_password:
        # the last "@" ends the user info, so a password holding a bare "@" is hidden whole
        user_info, _, host_port = netloc.rpartition("@")
        netloc = f"{user_info.partition(':')[0]}:{HIDDEN}@{host_port}"
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(key == "password" for key, _ in pairs):
        query = urlencode([(k, HIDDEN if k == "password" else v) for k, v in pairs], safe="/*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
