"""What a source value becomes on its way into PostgreSQL, and the canonical text both sides hash.

A source value goes through three stages, all in Python:

    transform   the column's own (`transform:` in the file): lower (str.lower), utc (a datetime
                or ISO text read as UTC: a naive value is UTC, an aware one is converted),
                utc_zero_null (utc, and MariaDB/MySQL's zero date '0000-00-00 …', or a date
                with a zero month or day, as NULL: the driver gives it as text), json
                (text parsed as JSON; invalid JSON, NaN and \\u0000 are refused, naming the key)
    coerce      to the Python type of the target column's type family (integer, numeric, float,
                boolean, timestamptz, timestamp, date, json, text): a SQLite date held as text
                becomes a datetime, a MariaDB TINYINT 0/1 a boolean for a boolean column
    wire        the text PostgreSQL's input function reads (jsonb_populate_recordset: copier.py)

The validation step (compare.py) reads the target's rows with psycopg, which gives the same Python
types per family (jsonb read as text and parsed the same way), and hashes `canonical_row` of each
side: NULL is \\N, numbers are normalised decimals (1.50 and 1.5 are one number, as are 1e2 and
100 in JSON, whose keys are sorted), datetimes are ISO text in UTC, strings JSON-quoted. So a row
hashes the same on both sides exactly when the target holds what the source says it should.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

TRANSFORMS = ("lower", "utc", "utc_zero_null", "json")
# MariaDB/MySQL's zero date, and dates with a zero month or day, which sql_mode '' lets in
_ZERO_DATE = re.compile(r"^\s*\d{4}-(00-\d{2}|\d{2}-00)")
FAMILIES = ("integer", "numeric", "float", "boolean", "timestamptz", "timestamp", "date", "json",
            "text")
_FAMILY_OF = {
    "smallint": "integer", "integer": "integer", "int": "integer", "bigint": "integer",
    "int2": "integer", "int4": "integer", "int8": "integer",
    "numeric": "numeric", "decimal": "numeric",
    "real": "float", "double precision": "float", "float4": "float", "float8": "float",
    "boolean": "boolean", "bool": "boolean",
    "timestamp with time zone": "timestamptz", "timestamptz": "timestamptz",
    "timestamp without time zone": "timestamp", "timestamp": "timestamp",
    "date": "date", "json": "json", "jsonb": "json",
}
NULL_TEXT = "\\N"


class CopyValueError(ValueError):
    """A source value the target column cannot take (the batch names its key)."""

    def __init__(self, column: str, message: str):
        self.column = column
        self.key: Any = None  # the row's key, once the batch knows it
        super().__init__(f"column {column}: {message}")


def family(type_sql: str) -> str:
    """The type family of a PostgreSQL type as format_type or a migration file writes it."""
    text = " ".join(type_sql.lower().split())
    if text.endswith("]"):
        return "text"
    text = re.sub(r"\s*\([^)]*\)", "", text).strip()
    return _FAMILY_OF.get(text, "text")


@dataclass(frozen=True)
class JsonValue:
    """A JSON document: the text as read (what is sent) and its parsed value (what is compared)."""

    text: str
    value: Any

    @classmethod
    def parse(cls, text: str) -> "JsonValue":
        if "\\u0000" in text:
            raise ValueError("JSON holding \\u0000, which PostgreSQL's jsonb refuses")
        return cls(text, json.loads(text, parse_float=Decimal, parse_int=Decimal,
                                    parse_constant=_no_constant))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


@dataclass(frozen=True)
class ColumnMap:
    """One target column, filled from `source` through `transform` (None: as it is)."""

    target: str
    source: str
    transform: str | None = None

    def value(self, raw: Any, kind: str) -> Any:
        """The source's raw value as the target column (of family `kind`) will hold it."""
        if raw is None:
            return None
        try:
            return coerce(kind, transform(self.transform, raw))
        except CopyValueError:
            raise
        except (ValueError, TypeError, ArithmeticError) as exc:
            shown = repr(raw) if len(repr(raw)) <= 60 else repr(raw)[:57] + "..."
            hint = (" (a MariaDB/MySQL zero date: `transform: utc_zero_null` copies it as NULL)"
                    if is_zero_date(_decoded(raw)) else "")
            raise CopyValueError(self.target, f"source value {shown} ({self.source}): "
                                              f"{' '.join(str(exc).split())}{hint}") from None


def transform(name: str | None, value: Any) -> Any:
    value = _decoded(value)
    if name is None:
        return value
    if name == "lower":
        return str(value).lower()
    if name == "utc":
        return as_utc(value)
    if name == "utc_zero_null":
        return None if is_zero_date(value) else as_utc(value)
    if name == "json":
        return value if isinstance(value, JsonValue) else JsonValue.parse(str(value))
    raise ValueError(f"unknown transform {name!r}")


def is_zero_date(value: Any) -> bool:
    return isinstance(value, str) and _ZERO_DATE.match(value) is not None


def _decoded(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8")
    return value


def as_utc(value: Any) -> datetime:
    """A datetime, date or ISO text, read as UTC when it names no zone; in UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip())
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    raise ValueError(f"not a date and time: {type(value).__name__}")


def coerce(kind: str, value: Any) -> Any:
    """`value` as the Python type psycopg gives for a column of family `kind`."""
    if value is None:
        return None
    if kind == "integer":
        if isinstance(value, bool):
            return int(value)
        number = Decimal(str(value).strip())
        if number != number.to_integral_value():
            raise ValueError("not a whole number")
        return int(number)
    if kind == "numeric":
        return Decimal(str(value).strip())
    if kind == "float":
        return float(value)
    if kind == "boolean":
        return _boolean(value)
    if kind == "timestamptz":
        return as_utc(value)
    if kind == "timestamp":
        stamp = datetime.fromisoformat(value.strip()) if isinstance(value, str) else value
        if not isinstance(stamp, datetime):
            raise ValueError(f"not a date and time: {type(stamp).__name__}")
        return stamp
    if kind == "date":
        day = date.fromisoformat(value.strip()[:10]) if isinstance(value, str) else value
        return day.date() if isinstance(day, datetime) else day
    if kind == "json":
        return value if isinstance(value, JsonValue) else JsonValue.parse(str(value))
    text = value if isinstance(value, str) else wire(value)
    if "\x00" in text:
        raise ValueError("text holding a NUL character, which PostgreSQL refuses")
    return text


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, Decimal)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("t", "true", "1", "yes", "y", "on"):
        return True
    if text in ("f", "false", "0", "no", "n", "off"):
        return False
    raise ValueError("not a boolean")


def wire(value: Any) -> str | None:
    """The text PostgreSQL's input function reads for `value` (None: NULL)."""
    if value is None:
        return None
    if isinstance(value, JsonValue):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def target_value(kind: str, value: Any) -> Any:
    """A value psycopg read from the target (jsonb selected as text), as `coerce` gives it."""
    if value is None:
        return None
    if kind == "json":
        return JsonValue.parse(value)
    if kind == "timestamptz":
        return value.astimezone(timezone.utc)
    return value


# -- canonical text ------------------------------------------------------------------------------
def canonical(value: Any) -> str:
    if value is None:
        return NULL_TEXT
    if isinstance(value, JsonValue):
        return "json:" + _json_text(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return _number(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return json.dumps(str(value), ensure_ascii=False)


def canonical_row(values: list[Any] | tuple) -> bytes:
    """The digest of a row's canonical text (its columns in the file's order)."""
    return hashlib.sha256("\t".join(canonical(v) for v in values).encode()).digest()


def _number(value: Decimal) -> str:
    try:
        normal = value.normalize()
    except InvalidOperation:
        return str(value)
    return "0" if normal.is_zero() else str(normal)


def _json_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return _number(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(_json_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + _json_text(value[k])
                              for k in sorted(value)) + "}"
    return json.dumps(value)
