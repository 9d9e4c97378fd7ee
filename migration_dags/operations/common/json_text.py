"""Text holding JSON, parsed without aborting a batch: a helper function in the tool's schema.

PostgreSQL 15 has no `IS JSON` and no `pg_input_is_valid`; `text::jsonb` raises on the first bad
row and would fail the whole batch. The helper catches exactly the parse errors and returns NULL
instead (its own subtransaction per call: about the cost of the cast again), so a batch can skip
the rows that do not parse and the validation step can count them and name their keys:

    migration_dags.<name>(text) -> jsonb   NULL for NULL, NULL for text that is not JSON

A non-NULL text whose result is NULL is therefore "not JSON" (JSON's own `null` parses to the
jsonb value 'null', which is not SQL NULL). One function per operation (its name holds the
operation's position and the migration), created by its start and dropped by its rollback.
"""

from __future__ import annotations

from ...actions import Action
from ...identifiers import quote, short_name
from ...state import STATE_SCHEMA


def parser_name(migration: str, index: int) -> str:
    name = short_name(f"mdg{index:03d}", migration, "jsonb")
    return f"{quote(STATE_SCHEMA)}.{quote(name)}"


def create_parser(function: str) -> Action:
    return Action(
        f"function {function}: text to jsonb, NULL when the text is not JSON (batches skip such "
        "rows, validation names them)",
        f"""CREATE OR REPLACE FUNCTION {function}(value text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $migration_dags$
BEGIN
  RETURN value::jsonb;
EXCEPTION WHEN invalid_text_representation OR untranslatable_character
            OR character_not_in_repertoire THEN
  RETURN NULL;
END
$migration_dags$""",
        takes_lock=False,
    )


def drop_parser(function: str) -> Action:
    return Action(f"drop function {function}", f"DROP FUNCTION IF EXISTS {function}(text)",
                  takes_lock=False)
