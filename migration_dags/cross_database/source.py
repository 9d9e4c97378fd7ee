"""The source database of a cross-database copy, through SQLAlchemy, read-only.

Its URL is in an environment variable (`source: {url_env: LEGACY_DATABASE_URL}`), never in the
migration file, and is never printed with its password. Supported: MariaDB/MySQL through PyMySQL
(`mysql+pymysql://root@127.0.0.1:3306/legacy`), SQLite (`sqlite:////path/to/file.db`) and
PostgreSQL. Every connection is read-only where the driver allows it, so a bug of ours cannot
write to the source:

    SQLite       the file is opened with mode=ro (the driver refuses every write), query_only on
    MariaDB      SET SESSION TRANSACTION READ ONLY on every connection (the server refuses writes)
    PostgreSQL   default_transaction_read_only on every connection

Rows are read with SQLAlchemy Core (the dialect quotes the names), one key range at a time, in key
order; the key is one integer column, which orders the same way in every database.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from ..errors import DatabaseUnavailableError, MigrationError, SchemaValidationError

SUPPORTED = ("mysql+pymysql://", "mariadb+pymysql://", "sqlite:///", "postgresql+psycopg://")


class SourceUnavailableError(DatabaseUnavailableError):
    """The source database of a copy does not answer (exit 5: run again once it is back)."""

    def __init__(self, where: str, env: str, shown: str, cause: str):
        MigrationError.__init__(
            self, f"{where}: cannot connect to the source database ${env} ({shown}): {cause}; "
                  f"check {env} and that the server is running, then run again")


@dataclass(frozen=True)
class SourceTable:
    """A table of the source: `name`, or `schema.name` (for MariaDB the schema is a database)."""

    name: str
    schema: str | None = None

    @classmethod
    def parse(cls, text: str) -> "SourceTable":
        schema, _, name = text.rpartition(".")
        return cls(name, schema or None)

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


class SourceDatabase:
    """The database in $`env`, for the operation at `where` (its file and field)."""

    def __init__(self, env: str, where: str):
        self.env, self.where = env, where
        self._engine = None

    # -- the URL -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        value = os.environ.get(self.env, "").strip()
        if not value:
            raise SchemaValidationError(
                f"{self.where}.source.url_env",
                f"the source database is in ${self.env}, which is not set; export "
                f"{self.env}=mysql+pymysql://user@host:3306/dbname (or sqlite:////path/file.db) "
                "and run again")
        return value

    @property
    def shown(self) -> str:
        """The URL without its password (for messages and logs)."""
        from sqlalchemy.engine import make_url

        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:
            return f"${self.env}"

    # -- connections -------------------------------------------------------------------------
    def engine(self):
        if self._engine is None:
            self._engine = read_only_engine(self.url, f"{self.where}.source.url_env", self.env)
        return self._engine

    @contextmanager
    def connect(self) -> Iterator[Any]:
        """A read-only SQLAlchemy connection; connection failures are SourceUnavailableError."""
        import sqlalchemy as sa

        try:
            conn = self.engine().connect()
        except sa.exc.DBAPIError as exc:
            raise SourceUnavailableError(self.where, self.env, self.shown,
                                         " ".join(str(exc.orig).split())) from exc
        try:
            yield conn
        finally:
            conn.close()

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- what is there -----------------------------------------------------------------------
    def columns(self, table: SourceTable) -> dict[str, Any]:
        """Column name -> SQLAlchemy type of `table`; SchemaValidationError when it is not there."""
        import sqlalchemy as sa

        with self.connect() as conn:
            inspector = sa.inspect(conn)
            if not inspector.has_table(table.name, schema=table.schema):
                raise SchemaValidationError(
                    f"{self.where}.from", f"table {table} does not exist in the source database "
                    f"${self.env} ({self.shown})")
            return {c["name"]: c["type"] for c in inspector.get_columns(table.name, schema=table.schema)}

    # -- reading -----------------------------------------------------------------------------
    def key_edges(self, table: SourceTable, key: str, partition_rows: int) -> list[int]:
        """The key that ends each partition of `partition_rows` keys, but the last one's."""
        import sqlalchemy as sa

        t = _table(table, [key])
        k = t.c[key]
        edges: list[int] = []
        with self.connect() as conn:
            while True:
                query = sa.select(k).order_by(k).offset(int(partition_rows) - 1).limit(1)
                if edges:
                    query = query.where(k > edges[-1])
                row = conn.execute(query).first()
                if row is None:
                    break
                edges.append(int(row[0]))
            if edges and conn.execute(sa.select(k).where(k > edges[-1]).limit(1)).first() is None:
                edges.pop()  # the last edge is the table's last key: no empty partition after it
        return edges

    def count(self, table: SourceTable, key: str, lower: int | None, upper: int | None) -> int:
        import sqlalchemy as sa

        t = _table(table, [key])
        query = _in_range(sa.select(sa.func.count()).select_from(t), t.c[key], lower, upper)
        with self.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def rows(self, conn: Any, table: SourceTable, columns: list[str], key: str,
             lower: int | None, upper: int | None, limit: int) -> list[tuple]:
        """Up to `limit` rows of (lower, upper] in key order, `columns` in that order."""
        import sqlalchemy as sa

        t = _table(table, columns if key in columns else [*columns, key])
        query = sa.select(*[t.c[c] for c in columns]).order_by(t.c[key]).limit(int(limit))
        return [tuple(r) for r in conn.execute(_in_range(query, t.c[key], lower, upper))]


def _table(table: SourceTable, columns: list[str]):
    import sqlalchemy as sa

    return sa.table(table.name, *[sa.column(c) for c in dict.fromkeys(columns)], schema=table.schema)


def _in_range(query, key, lower: int | None, upper: int | None):
    if lower is not None:
        query = query.where(key > lower)
    if upper is not None:
        query = query.where(key <= upper)
    return query


def read_only_engine(url: str, field: str, env: str):
    """A SQLAlchemy engine whose every connection refuses writes (see the module doc)."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    try:
        parsed = make_url(url)
    except Exception:
        raise SchemaValidationError(field, f"${env} is not a SQLAlchemy URL; give one of "
                                           f"{', '.join(s + '...' for s in SUPPORTED)}") from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend == "sqlite":
        path = parsed.database
        if not path or path == ":memory:":
            raise SchemaValidationError(field, f"${env} names no SQLite file; give "
                                               "sqlite:////absolute/path/to/file.db")
        if not os.path.isfile(path):
            raise SchemaValidationError(field, f"${env}: SQLite file {path} does not exist")
        uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"

        def connect():
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            conn.execute("PRAGMA query_only = ON")
            return conn

        return sa.create_engine("sqlite://", creator=connect, poolclass=NullPool)
    if backend in ("mysql", "mariadb") and driver == "pymysql":
        statement = "SET SESSION TRANSACTION READ ONLY"
    elif backend == "postgresql" and driver in ("psycopg", "psycopg2"):
        statement = "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"
    else:
        raise SchemaValidationError(
            field, f"${env} uses {backend}+{driver}, which a copy does not read; give one of "
                   f"{', '.join(s + '...' for s in SUPPORTED)}")
    engine = sa.create_engine(parsed, poolclass=NullPool)

    @sa.event.listens_for(engine, "connect")
    def _read_only(dbapi_conn, _record):
        cursor = dbapi_conn.cursor()
        cursor.execute(statement)
        cursor.close()
        dbapi_conn.commit()  # a session setting: kept whatever later transactions do

    return engine
