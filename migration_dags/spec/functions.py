"""Which functions an expression may call.

An expression runs inside our DDL, triggers and batches with the migration's privileges, so a
call with a side effect would act outside the migration's steps and outside what its undo knows.
The rule, in the order it is checked:

1. A function the migration lists in `allow_functions` (as `name` or `schema.name`) is allowed.
2. A function named with a schema other than pg_catalog is refused at load time; one named
   without a schema is refused by `plan`/validate when the database has a function of that name
   outside pg_catalog (the search path could pick it): user functions can do anything, and an
   IMMUTABLE one may even run while the planner folds constants.
3. Built-in functions with side effects are refused: SIDE_EFFECTS and the prefixes in
   SIDE_EFFECT_PREFIXES (sessions, server files, large objects, settings, locks, sequences,
   replication, WAL, sleeping, and the *_to_xml family and ts_stat, which run a query given as
   text). nextval and setval are allowed in a column's default, where they belong.
"""

from __future__ import annotations

from typing import Iterable

from .sql_text import FunctionName

SIDE_EFFECTS = frozenset({
    # other sessions and the server
    "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile",
    "pg_promote", "pg_log_backend_memory_contexts", "pg_import_system_collations",
    "pg_notify", "set_config", "pg_export_snapshot", "pg_current_xact_id", "txid_current",
    # sequences (allowed in column defaults, see COLUMN_DEFAULT_ALLOWED)
    "nextval", "setval",
    # server files
    "pg_stat_file", "pg_current_logfile",
    # large objects outside the lo_ prefix
    "loread", "lowrite",
    # functions that run a query given as text
    "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "ts_stat",
})
SIDE_EFFECT_PREFIXES = (
    "dblink", "lo_", "pg_sleep", "pg_read_", "pg_ls_", "pg_file_", "pg_stat_reset",
    "pg_advisory_", "pg_try_advisory_", "pg_replication_", "pg_logical_", "pg_create_",
    "pg_drop_", "pg_copy_", "pg_wal_", "pg_switch_wal", "pg_backup_", "pg_start_backup",
    "pg_stop_backup", "table_to_xml", "cursor_to_xml", "schema_to_xml", "database_to_xml",
)
COLUMN_DEFAULT_ALLOWED = frozenset({"nextval", "setval"})


def allowed(function: FunctionName, allow: Iterable[str]) -> bool:
    allow = set(allow)
    return function.name in allow or str(function) in allow


def refusal(function: FunctionName, allow: Iterable[str], column_default: bool = False) -> str | None:
    """Why the call is refused before any database work, or None."""
    if allowed(function, allow):
        return None
    if function.schema is not None and function.schema != "pg_catalog":
        return (f"calls {function}, which is not a built-in (pg_catalog) function; "
                "list it in allow_functions to allow it")
    name = function.name
    if column_default and name in COLUMN_DEFAULT_ALLOWED:
        return None
    if name in SIDE_EFFECTS or name.startswith(SIDE_EFFECT_PREFIXES):
        return (f"calls {name}, which has side effects; list it in allow_functions "
                "if the migration really needs it")
    return None
