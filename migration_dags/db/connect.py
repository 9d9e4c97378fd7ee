"""Connections to the target database: every one autocommit, named after the tool, and a failure
to connect is a DatabaseUnavailableError (exit 5) that never shows the password."""

from __future__ import annotations

import re

import psycopg

from ..errors import DatabaseUnavailableError

APP_PREFIX = "migration-dags"


def libpq_url(url: str) -> str:
    """Accept SQLAlchemy-style URLs too: drop a `+driver` suffix."""
    return re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", url)


def display_url(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def connect(url: str, application_name: str = APP_PREFIX) -> psycopg.Connection:
    try:
        return psycopg.connect(
            libpq_url(url), autocommit=True, application_name=application_name[:63], connect_timeout=10
        )
    except psycopg.OperationalError as exc:
        cause = " ".join(str(exc).split()) or type(exc).__name__
        raise DatabaseUnavailableError(display_url(url), cause) from exc
