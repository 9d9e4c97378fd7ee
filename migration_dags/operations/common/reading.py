"""Reading helpers shared by operation types, on top of fields.FieldReader."""

from __future__ import annotations

from ...fields import FieldReader


def optional_sql(reader: FieldReader, key: str) -> str | None:
    """An optional SQL expression: absent is None, but present and blank is an error (FieldReader
    accepts a blank optional string, which would become `WHERE ()` at run time)."""
    value = reader.sql(key, required=False)
    if value is not None and not value.strip():
        raise reader.error(key, "must not be empty (leave it out instead)")
    return value
