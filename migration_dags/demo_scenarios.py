"""What the demo says and does around each shipped migration's `up` and `complete`: what a new
release sees while it is expanded, a line read from the database once complete, and for the one
that must fail first, what the "application" wrote before and the fix.

A migration the demo does not know here still runs (its up is printed as is). To add one (the
cross-database copy, say), add an entry: `prepare` runs before its first up (create its source,
set its URL variable) and returns a line to print; `shows` reads what the up did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import psycopg

from .demo_data import duplicate_email
from .expand.version_schema import version_schema_name

Url = str


@dataclass(frozen=True)
class Scenario:
    shows: Callable[[Url], str]
    prepare: Callable[[Url], str] | None = None
    # while expanded (after up, before complete): what a new release sees through the version
    # schema; given the URL and the migration's name
    expanded: Callable[[Url, str], str] | None = None
    # the first up is expected to fail validation (exit 3) and roll itself back; fix makes the
    # second up pass and says what it changed
    fix: Callable[[Url], str] | None = None


def _one(url: Url, sql: str) -> tuple:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchone()


def _new_release(url: Url, name: str) -> psycopg.Connection:
    schema = version_schema_name("public", name)
    return psycopg.connect(url, options=f"-c search_path={schema},public")


def _swap_expanded(url: Url, name: str) -> str:
    old = _one(url, "SELECT email FROM users WHERE id = 7")[0]
    with _new_release(url, name) as conn:
        new = conn.execute("SELECT email FROM users WHERE id = 7").fetchone()[0]
    return (f"user 7: the old release reads email {old!r} in public; a new release with "
            f"{version_schema_name('public', name)} first on its search_path reads {new!r} "
            "(email_new, under the name email)")


def _verification_expanded(url: Url, name: str) -> str:
    with _new_release(url, name) as conn:
        # a write that leaves the data as it was
        key, verified = conn.execute(
            "UPDATE users SET email_verified = email_verified WHERE id = (SELECT min(id) FROM "
            "users) RETURNING id, email_verified").fetchone()
    return (f"a new release updated user {key} through the new shape (email_verified = "
            f"{verified}) while the old release keeps using public")


def _swap_shows(url: Url) -> str:
    odd, total = _one(url, "SELECT count(*) FILTER (WHERE email <> lower(btrim(email))), count(*) FROM users")
    kind = _one(url, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                     "WHERE attrelid = 'users'::regclass AND attname = 'email'")[0]
    return (f"users.email is now {kind}, unique, normalised: {total - odd:,} of {total:,} "
            "(the application kept reading and writing `email`)")


_twin: dict[Url, int] = {}


def _swap_prepare(url: Url) -> str:
    _twin[url] = duplicate_email(url, of_user=7)
    email = _one(url, f"SELECT email FROM users WHERE id = {int(_twin[url])}")[0]
    return (f"the application signs up user {_twin[url]} as {email!r}, which is user 7's email "
            "once trimmed and lower-cased: swap_user_email's validation must catch it")


def _swap_fix(url: Url) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM users WHERE id = %s", (_twin.pop(url),))
    return "the support team merges the duplicate account into user 7 (deletes the twin); up again"


def _preferences_shows(url: Url) -> str:
    rows, users = _one(url, "SELECT (SELECT count(*) FROM user_preferences), (SELECT count(*) FROM users)")
    return f"user_preferences: {rows:,} rows, one per user with a theme or a notifications setting ({users:,} users)"


def _verification_shows(url: Url) -> str:
    verified, total = _one(url, "SELECT count(*) FILTER (WHERE email_verified), count(*) FROM users")
    return f"users verified: {verified:,} of {total:,}"


def _roles_shows(url: Url) -> str:
    roles, assigned = _one(url, "SELECT (SELECT string_agg(name, ', ' ORDER BY id) FROM roles), "
                                "(SELECT count(*) FROM user_roles)")
    return f"roles: {roles} (declared rows); user_roles: {assigned:,} users given `user`"


def _old_table_shows(url: Url) -> str:
    rows, objects = _one(url, "SELECT count(*), count(*) FILTER (WHERE jsonb_typeof(data) = 'object') FROM new_table")
    return f"new_table: {rows:,} rows upserted from old_table, {objects:,} with a JSON object in data"


SCENARIOS: dict[str, Scenario] = {
    "swap_user_email": Scenario(_swap_shows, prepare=_swap_prepare, expanded=_swap_expanded,
                                fix=_swap_fix),
    "add_user_preferences": Scenario(_preferences_shows),
    "add_email_verification": Scenario(_verification_shows, expanded=_verification_expanded),
    "add_user_roles": Scenario(_roles_shows),
    "migrate_old_table": Scenario(_old_table_shows),
    # copy_cross_database (scenario 6): its entry goes here (prepare: the source database and
    # LEGACY_DATABASE_URL; shows: rows copied)
}
