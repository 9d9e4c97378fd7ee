"""The legacy database copy_cross_database reads: `legacy_customers`, seeded for the demo and tests.

    seed_legacy_source("sqlite:////abs/path/legacy.db", rows=100_000)     # the demo's source
    seed_legacy_source("mysql+pymysql://root@127.0.0.1:3306/legacy", rows=1_000)

(Re)creates `legacy_customers (id int auto_increment primary key, full_name varchar(200), email
varchar(255), signup_date datetime, prefs text)` and fills it with `rows` deterministic rows,
odd values included: mixed-case and NULL emails, NULL and non-ASCII names, NULL signup dates,
prefs that are NULL, `{}`, `[]`, the JSON `null`, nested documents and numbers such as 1.50.
It writes through its own (writable) SQLAlchemy engine: the copy itself only ever reads.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterator

TABLE = "legacy_customers"
_DDL = {
    "sqlite": f"""CREATE TABLE {TABLE} (
        id INTEGER PRIMARY KEY AUTOINCREMENT, full_name VARCHAR(200), email VARCHAR(255),
        signup_date DATETIME, prefs TEXT)""",
    "mysql": f"""CREATE TABLE {TABLE} (
        id INT AUTO_INCREMENT PRIMARY KEY, full_name VARCHAR(200), email VARCHAR(255),
        signup_date DATETIME, prefs TEXT) CHARACTER SET utf8mb4""",
}
_FIRST = ["Ada", "Grace", "Linus", "Zoë", "José", "Øyvind", "Mei", "Sven", "Amara", "Noor"]
_LAST = ["Lovelace", "Hopper", "Torvalds", "Ångström", "Núñez", "O'Brien", "Li", "Smith"]
_PREFS = [
    None, "{}", "[]", "null", '{"theme": "dark", "notifications": false}',
    '{"theme": "light", "notifications": true, "tags": ["a", "b"], "score": 1.50}',
    '{"nested": {"deep": {"x": 1e2}}, "lang": "fr"}',
]


def sqlite_url(path: str | Path) -> str:
    """The SQLAlchemy URL of a SQLite file (absolute)."""
    return f"sqlite:///{Path(path).resolve()}"


def legacy_rows(rows: int, seed: int = 11) -> Iterator[dict]:
    """Row i (ids 1..rows): the same rows for the same arguments."""
    rng = random.Random(seed)
    start = datetime(2015, 1, 1)
    for i in range(1, rows + 1):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        email = f"{first}.{last}{i}@Example.COM" if i % 13 == 0 else f"{first}.{last}{i}@example.com"
        signup = start + timedelta(seconds=rng.randrange(0, 10 * 365 * 86400))
        yield {
            "id": i,
            "full_name": None if i % 97 == 0 else f"{first} {last}",
            "email": None if i % 101 == 0 else email.replace("'", ""),
            "signup_date": None if i % 53 == 0 else signup.strftime("%Y-%m-%d %H:%M:%S"),
            "prefs": _PREFS[i % len(_PREFS)],
        }


def seed_legacy_source(url: str, rows: int = 100_000, chunk: int = 10_000) -> int:
    """(Re)create and fill legacy_customers at the SQLAlchemy `url`; returns the rows written."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    dialect = "sqlite" if engine.dialect.name == "sqlite" else "mysql"
    insert = sa.text(f"INSERT INTO {TABLE} (id, full_name, email, signup_date, prefs) "
                     "VALUES (:id, :full_name, :email, :signup_date, :prefs)")
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {TABLE}"))
            conn.execute(sa.text(_DDL[dialect]))
            batch: list[dict] = []
            for row in legacy_rows(rows):
                batch.append(row)
                if len(batch) >= chunk:
                    conn.execute(insert, batch)
                    batch = []
            if batch:
                conn.execute(insert, batch)
    finally:
        engine.dispose()
    return rows
