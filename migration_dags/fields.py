"""Reading fields out of a parsed YAML mapping, each failure a SpecError naming file and field path."""

from __future__ import annotations

from typing import Any

from .errors import SpecError, UnsafeIdentifierError
from .identifiers import TableName, identifier_problem, type_problem

_MISSING = object()


class FieldReader:
    """Reads one mapping at `path` inside `file`; remembers which keys were read to refuse extras."""

    def __init__(self, file: str, path: str, data: Any):
        self.file = file
        self.path = path
        if not isinstance(data, dict):
            raise SpecError(file, path or "(top level)", f"must be a mapping, got {_kind(data)}")
        self.data = data
        self._read: set[str] = set()

    def field_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, message: str) -> SpecError:
        return SpecError(self.file, self.field_path(key), message)

    def _get(self, key: str, required: bool) -> Any:
        self._read.add(key)
        value = self.data.get(key, _MISSING)
        if value is _MISSING or value is None:
            if required:
                raise self.error(key, "is required")
            return _MISSING
        return value

    def string(self, key: str, required: bool = True, default: str | None = None) -> str | None:
        value = self._get(key, required)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.error(key, f"must be a string, got {_kind(value)}")
        value = str(value)
        if required and not value.strip():
            raise self.error(key, "must not be empty")
        return value

    def sql(self, key: str, required: bool = True) -> str | None:
        """A SQL expression or statement written by the user: non-empty text."""
        return self.string(key, required)

    def identifier(self, key: str, required: bool = True) -> str | None:
        value = self._get(key, required)
        if value is _MISSING:
            return None
        problem = identifier_problem(value)
        if problem:
            raise UnsafeIdentifierError(self.file, self.field_path(key), f"identifier {problem}")
        return value

    def identifiers(self, key: str, required: bool = True) -> list[str]:
        value = self._get(key, required)
        if value is _MISSING:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise self.error(key, "must be a non-empty list of names")
        for i, item in enumerate(value):
            problem = identifier_problem(item)
            if problem:
                raise UnsafeIdentifierError(
                    self.file, f"{self.field_path(key)}[{i}]", f"identifier {problem}"
                )
        return list(value)

    def table(self, key: str = "table", required: bool = True) -> TableName | None:
        value = self._get(key, required)
        if value is _MISSING:
            return None
        if isinstance(value, dict):
            sub = FieldReader(self.file, self.field_path(key), value)
            name = TableName(sub.identifier("schema", False) or "public", sub.identifier("name"))
            sub.finish()
            return name
        if not isinstance(value, str):
            raise self.error(key, f"must be a table name, got {_kind(value)}")
        parsed = TableName.parse(value)
        for part in (parsed.schema, parsed.name):
            problem = identifier_problem(part)
            if problem:
                raise UnsafeIdentifierError(self.file, self.field_path(key), f"identifier {problem}")
        return parsed

    def type_sql(self, key: str = "type", required: bool = True) -> str | None:
        value = self._get(key, required)
        if value is _MISSING:
            return None
        problem = type_problem(value)
        if problem:
            raise self.error(key, problem)
        return value.strip()

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, False)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {value!r}")
        return value

    def integer(self, key: str, default: int, minimum: int = 0) -> int:
        value = self._get(key, False)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(key, f"must be a whole number >= {minimum}, got {value!r}")
        return value

    def mapping(self, key: str, required: bool = True) -> "FieldReader | None":
        value = self._get(key, required)
        if value is _MISSING:
            return None
        return FieldReader(self.file, self.field_path(key), value)

    def raw(self, key: str, required: bool = False) -> Any:
        value = self._get(key, required)
        return None if value is _MISSING else value

    def finish(self) -> None:
        extra = sorted(set(self.data) - self._read, key=str)
        if extra:
            known = ", ".join(sorted(self._read))
            raise self.error(str(extra[0]), f"unknown field (known here: {known})")


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
