"""pg_tools: a pg_dump that can read the server, whatever /usr/bin/pg_dump is."""

from __future__ import annotations

import subprocess

import psycopg

from migration_dags.pg_tools import client_program, server_major_version
from pg_server import SERVER_URL


def test_the_chosen_pg_dump_reads_the_test_server(database_url):
    with psycopg.connect(SERVER_URL) as conn:
        major = server_major_version(conn)
    program = client_program("pg_dump", major)
    out = subprocess.run([program, "--version"], capture_output=True, text=True, check=True).stdout
    assert int(out.split()[-1].split(".")[0]) >= major
    subprocess.run([program, "--schema-only", "-d", database_url], capture_output=True, check=True)
