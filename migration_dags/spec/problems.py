"""How a spec model reports a problem, and how pydantic's report of it becomes our one-line SpecError.

Validators raise `problem(message)`: pydantic records it at the place being validated, and `at`
names a field below that place when a rule about several fields blames one of them
(`problem("...", at="column.nullable")` raised by the add_column body). `spec_error` turns the
first error pydantic found into `SpecError(file, field_path, message)`, with field paths written
as the user sees them: `operations[2].add_column.column.type`.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from ..errors import SpecError, UnsafeIdentifierError

# error types our validators raise; an unsafe identifier becomes UnsafeIdentifierError
PROBLEM = "spec_problem"
UNSAFE_IDENTIFIER = "unsafe_identifier"


def problem(message: str, at: str | None = None, kind: str = PROBLEM) -> PydanticCustomError:
    """A validation error with our own wording. The message goes in as context, not as the
    template: messages may hold braces ("must use {rows} exactly once")."""
    context = {"message": message} if at is None else {"message": message, "at": at}
    return PydanticCustomError(kind, "{message}", context)


def describe(value: Any) -> str:
    """What the user wrote, in words: 'a mapping', 'a list', 'nothing'."""
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def spec_error(file: str, error: ValidationError, prefix: str = "") -> SpecError:
    """The first problem pydantic found, as one line naming file and field."""
    first = error.errors(include_url=False)[0]
    context = first.get("ctx") or {}
    path = field_path(prefix, first["loc"], context.get("at"))
    kind = UnsafeIdentifierError if first["type"] == UNSAFE_IDENTIFIER else SpecError
    return kind(file, path or "(top level)", _message(first))


def field_path(prefix: str, loc: tuple[str | int, ...], at: str | None = None) -> str:
    """('operations', 2, 'add_column', 'column') -> 'operations[2].add_column.column'."""
    path = prefix
    for index, part in enumerate(loc):
        if part == "[key]":  # pydantic's marker for "the key itself" of a mapping entry
            continue
        keyed = index + 1 < len(loc) and loc[index + 1] == "[key]"
        if isinstance(part, int) and not keyed:
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    if at:
        path += f".{at}" if path else at
    return path


def _message(error: dict[str, Any]) -> str:
    kind, value, context = error["type"], error.get("input"), error.get("ctx") or {}
    if "message" in context:
        return context["message"]
    if kind == "missing":
        return "is required"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping, got {describe(value)}"
    if kind == "list_type":
        return f"must be a list, got {describe(value)}"
    if kind == "literal_error":
        return f"must be {context['expected'].replace(chr(39), '')}, got {value!r}"
    if kind == "extra_forbidden":
        return "unknown field"
    text = error["msg"]
    return text[:1].lower() + text[1:]
