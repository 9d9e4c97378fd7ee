"""The tables the shipped migrations run on, seeded with NULLs and odd values (the demo's and the
scenario tests' data).

    users       (id bigserial primary key, email text not null, created_at timestamptz not null
                default now(), theme text, notifications_enabled boolean)
                emails in mixed case with spaces around them (unique once normalised);
                theme NULL for every 5th user, else odd strings as well as plain ones ('dark',
                ' Dark ', '', 'solarized ☀', "o'brien", a 200-character one); notifications NULL
                for every 3rd, else true or false; created_at spread over 90 days
    old_table   ("id" bigint primary key, "userId" bigint, "legacyData" text, "createdAt"
                timestamptz), one row per user: legacyData valid JSON of every odd shape (nested
                objects, unicode escapes, arrays, a bare string, number or `null`, whitespace
                around it), or SQL NULL; userId NULL for every 11th row

`seed(url, rows)` makes both; `duplicate_email(url)` adds the one user whose email collides with
another once normalised (the demo's failing validation).
"""

from __future__ import annotations

import time

import psycopg

USERS_DDL = """CREATE TABLE users (
    id bigserial PRIMARY KEY,
    email text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    theme text,
    notifications_enabled boolean)"""

USERS_ROWS = """INSERT INTO users (email, created_at, theme, notifications_enabled)
SELECT CASE g %% 5 WHEN 0 THEN 'User' || g || '@Example.COM'
                   WHEN 1 THEN '  user' || g || '@example.com '
                   WHEN 2 THEN '   USER' || g || '@EXAMPLE.ORG'
                   WHEN 3 THEN 'user' || g || '@example.org'
                   ELSE 'User.' || g || '+tag@Mail.Example.com ' END,
       now() - (g %% 90) * interval '1 day' - (g %% 997) * interval '1 minute',
       CASE WHEN g %% 5 = 0 THEN NULL
            ELSE (ARRAY['dark', 'light', ' Dark ', '', 'solarized ☀', 'o''brien', repeat('x', 200),
                        'DARK', 'light'])[1 + g %% 9] END,
       CASE WHEN g %% 3 = 0 THEN NULL ELSE g %% 2 = 0 END
FROM generate_series(1, %s) g"""

OLD_TABLE_DDL = """CREATE TABLE old_table (
    "id" bigint PRIMARY KEY,
    "userId" bigint,
    "legacyData" text,
    "createdAt" timestamptz)"""

OLD_TABLE_ROWS = """INSERT INTO old_table ("id", "userId", "legacyData", "createdAt")
SELECT g, CASE WHEN g %% 11 = 0 THEN NULL ELSE g END,
       CASE g %% 8
         WHEN 0 THEN NULL
         WHEN 1 THEN '{"theme": "dark", "tags": ["a", "b"], "n": ' || g || '}'
         WHEN 2 THEN '  {"nested": {"deep": {"deeper": [1, 2.5e3, null, true]}}}  '
         WHEN 3 THEN '"caf\\u00e9 \\"quoted\\" \\\\ back"'
         WHEN 4 THEN 'null'
         WHEN 5 THEN '[]'
         WHEN 6 THEN '{"emoji": "🙂", "ünïcode": "ok", "empty": {}}'
         ELSE '12345678901234567890'
       END,
       now() - (g %% 365) * interval '1 day'
FROM generate_series(1, %s) g"""


def seed_users(url: str, rows: int) -> float:
    """The users table with `rows` users; seconds it took."""
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(USERS_DDL)
        conn.execute(USERS_ROWS, (rows,))
        conn.execute("ANALYZE users")
    return time.monotonic() - started


def seed_old_table(url: str, rows: int) -> float:
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(OLD_TABLE_DDL)
        conn.execute(OLD_TABLE_ROWS, (rows,))
        conn.execute("ANALYZE old_table")
    return time.monotonic() - started


def seed(url: str, rows: int) -> float:
    """Every table the shipped migrations need; seconds it took."""
    return seed_users(url, rows) + seed_old_table(url, rows)


def duplicate_email(url: str, of_user: int = 7) -> int:
    """A user whose email is another's once trimmed and lower-cased; returns its id."""
    with psycopg.connect(url, autocommit=True) as conn:
        email = conn.execute("SELECT email FROM users WHERE id = %s", (of_user,)).fetchone()[0]
        return conn.execute("INSERT INTO users (email) VALUES (%s) RETURNING id",
                            (" " + email.strip().upper() + " ",)).fetchone()[0]
