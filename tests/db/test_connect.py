"""Connecting: URLs in every form libpq reads, a dead database and an unreadable URL as one clear line."""

from __future__ import annotations

import os

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from migration_dags.db import connect, display_url, libpq_url
from migration_dags.errors import DatabaseUnavailableError, DatabaseUrlError

SOCKET_URL = "postgresql://postgres:@/postgres?host=/some/dir"  # what the embedded pgserver gives
ODD_PASSWORD = "p@ss:w%rd"
ODD_PASSWORD_URL = "postgresql://u:p%40ss%3Aw%25rd@h:5432/db"


def test_dead_database_is_one_line_without_password():
    with pytest.raises(DatabaseUnavailableError) as info:
        connect("postgresql://postgres:secret@127.0.0.1:1/nothing")
    text = str(info.value)
    assert "\n" not in text and "secret" not in text and "127.0.0.1:1" in text


def test_sqlalchemy_urls_are_accepted():
    assert libpq_url("postgresql+psycopg://u@h/db") == "postgresql://u@h/db"
    assert display_url("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"


def test_libpq_forms_pass_through_unchanged():
    for url in (SOCKET_URL, ODD_PASSWORD_URL, "host=/some/dir dbname=app user=me", "postgres://u@h/db"):
        assert libpq_url(url) == url


def test_a_unix_socket_url_keeps_its_socket_folder():
    assert conninfo_to_dict(libpq_url(SOCKET_URL)) == {"user": "postgres", "dbname": "postgres",
                                                       "host": "/some/dir"}
    assert display_url(SOCKET_URL) == "postgresql://postgres:***@/postgres?host=/some/dir"


def test_a_percent_encoded_password_with_at_and_colon_is_read_and_hidden():
    assert conninfo_to_dict(libpq_url(ODD_PASSWORD_URL))["password"] == ODD_PASSWORD
    assert display_url(ODD_PASSWORD_URL) == "postgresql://u:***@h:5432/db"


def test_a_password_with_a_bare_at_sign_is_hidden_whole():
    assert display_url("postgresql://u:p@ss@h/db") == "postgresql://u:***@h/db"


def test_a_password_in_the_query_is_hidden():
    assert display_url("postgresql://u@h/db?password=secret&sslmode=require") == (
        "postgresql://u@h/db?password=***&sslmode=require")


def test_a_key_value_password_is_hidden():
    shown = display_url(f"host=h dbname=d user=u password='{ODD_PASSWORD} x'")
    assert ODD_PASSWORD not in shown and conninfo_to_dict(shown)["password"] == "***"
    assert display_url("host=h dbname=d") == "host=h dbname=d"


@pytest.mark.parametrize("url", ["not-a-url", "mysql://u@h/db", "postgresql://u@h/db?bogus=1"])
def test_an_unreadable_url_is_a_database_url_error_naming_the_option(url):
    with pytest.raises(DatabaseUrlError) as info:
        libpq_url(url)
    assert info.value.exit_code == 2
    assert "--database-url" in info.value.one_line() and "\n" not in str(info.value)


def test_an_unreadable_url_never_shows_its_password():
    with pytest.raises(DatabaseUrlError) as info:
        connect("postgresql://u:secret@[::1/db")
    assert "secret" not in str(info.value)


def test_connects_through_a_key_value_string_and_a_url_with_an_odd_password(database_url):
    # the test server may trust local connections, so this proves user, host, port and database
    # are read right around the password; the password's own decoding is checked above
    server = conninfo_to_dict(database_url)
    with connect(make_conninfo(**server)) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (server["dbname"],)
    conn = connect(database_url)
    role = f"mdg_odd_password_{os.getpid()}"  # roles are server-wide: one per test process
    try:
        conn.execute(f"DROP ROLE IF EXISTS {role}")
        conn.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            psycopg.sql.Identifier(role), ODD_PASSWORD))
        host, port = server.get("host") or "localhost", server.get("port") or 5432
        if host.startswith("/"):  # a unix-socket folder (the embedded server) goes in the query
            url = f"postgresql://{role}:p%40ss%3Aw%25rd@/{server['dbname']}?host={host}&port={port}"
        else:
            url = f"postgresql://{role}:p%40ss%3Aw%25rd@{host}:{port}/{server['dbname']}"
        with connect(url) as as_role:
            assert as_role.execute("SELECT current_user").fetchone() == (role,)
    finally:
        conn.execute(f"DROP ROLE IF EXISTS {role}")
        conn.close()


def test_the_tools_sessions_leave_parallel_workers_to_the_application(database_url, monkeypatch):
    monkeypatch.delenv("MIGRATION_DAGS_PARALLEL", raising=False)
    with connect(database_url) as conn:
        assert conn.execute("SHOW max_parallel_workers_per_gather").fetchone()[0] == "0"
        assert conn.execute("SHOW max_parallel_maintenance_workers").fetchone()[0] == "0"
    monkeypatch.setenv("MIGRATION_DAGS_PARALLEL", "server")
    with connect(database_url) as conn, psycopg.connect(database_url) as plain:
        assert (conn.execute("SHOW max_parallel_workers_per_gather").fetchone()[0]
                == plain.execute("SHOW max_parallel_workers_per_gather").fetchone()[0])
