"""The vocabulary spec models are declared in: a strict base model and the field types users write.

    class AddCheckSpec(SpecModel):
        table: TableRef           # users | sales.users | {schema: sales, name: users}
        name: Identifier          # checked by identifiers.identifier_problem
        check: SqlExpression      # exactly one SQL expression (sql_text.py), safe functions only

Each type checks what it is given with its own words (`problem`), so the SpecError a user sees
reads the same whichever model the field is in. A key written with no value (`up:` or `up: ~`)
counts as left out, and a key the model does not declare is an error naming the known ones.
"""

from __future__ import annotations

from typing import Annotated, Any, Callable

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetPydanticSchema,
    ValidationInfo,
    model_validator,
)
from pydantic_core import core_schema

from ..identifiers import TableName, identifier_problem
from .functions import refusal
from .problems import UNSAFE_IDENTIFIER, describe, problem
from .sql_text import (
    SqlProblem,
    expression_tree,
    function_calls,
    query_tree,
    statements,
    type_problem,
)


class SpecModel(BaseModel):
    """A mapping in a migration file: declared keys only, `key: null` the same as no key."""

    # a docstring under a field becomes its description in the JSON Schema (editors show it)
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    @model_validator(mode="before")
    @classmethod
    def _read_mapping(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data  # pydantic reports "must be a mapping"
        data = {key: value for key, value in data.items() if value is not None}
        known = {field.alias or name for name, field in cls.model_fields.items()}
        for key in data:
            if key not in known:
                raise problem(f"unknown field (known here: {', '.join(sorted(known))})", at=str(key))
        cls.check_keys(data)
        return data

    @classmethod
    def check_keys(cls, data: dict[str, Any]) -> None:
        """Rules about which keys are given (exactly one of set and insert): checked before the
        fields, so that when the keys are wrong it is the error reported, not a symptom of it."""


# -- text --------------------------------------------------------------------------------------
def _text(value: Any) -> str:
    """YAML reads `default: 0` as a number; the user meant the text."""
    if isinstance(value, bool):
        raise problem(f"must be a string, got a boolean (quote it: '{str(value).lower()}')")
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        raise problem(f"must be a string, got {describe(value)}")
    return value


def _non_blank(blank_message: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        text = _text(value)
        if not text.strip():
            raise problem(blank_message)
        return text

    return check


Text = Annotated[str, BeforeValidator(_text, json_schema_input_type=str | float)]
_SQL_INPUT = dict(json_schema_input_type=str | float)
# SQL text written by the user; blank would become `WHERE ()` at run time. Checked further by
# the types below: an expression, a query, statements.
Sql = Annotated[str, BeforeValidator(_non_blank("must not be empty"), **_SQL_INPUT)]
OptionalSql = Annotated[
    str, BeforeValidator(_non_blank("must not be empty (leave it out instead)"), **_SQL_INPUT)
]


def allow_functions(info: ValidationInfo) -> tuple[str, ...]:
    """The migration's allow_functions, which the loader puts in the validation context."""
    return tuple((info.context or {}).get("allow_functions", ()))


def refuse_calls(tree: object, info: ValidationInfo, column_default: bool = False) -> None:
    for function in function_calls(tree):
        why = refusal(function, allow_functions(info), column_default)
        if why:
            raise problem(why)


def _expression(column_default: bool) -> Callable[[str, ValidationInfo], str]:
    def check(value: str, info: ValidationInfo) -> str:
        try:
            tree = expression_tree(value)
        except SqlProblem as exc:
            raise problem(str(exc)) from None
        refuse_calls(tree, info, column_default)
        return value

    return check


# exactly one SQL expression, calling no function with side effects (sql_text.py, functions.py)
SqlExpression = Annotated[Sql, AfterValidator(_expression(column_default=False))]
OptionalSqlExpression = Annotated[OptionalSql, AfterValidator(_expression(column_default=False))]
# a column's DEFAULT: an expression that may also take the next value of a sequence
ColumnDefault = Annotated[OptionalSql, AfterValidator(_expression(column_default=True))]


def _statements(value: str) -> str:
    try:
        statements(value)
    except SqlProblem as exc:
        raise problem(str(exc)) from None
    return value


# raw_sql's up and down: statements PostgreSQL's parser reads (the one place for statements)
SqlStatements = Annotated[Sql, AfterValidator(_statements)]


def check_query(text: str, info: ValidationInfo) -> None:
    """`text` is one SELECT calling no function with side effects, or a problem is raised."""
    try:
        tree = query_tree(text)
    except SqlProblem as exc:
        raise problem(str(exc)) from None
    refuse_calls(tree, info)


def _sql_type(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise problem("must be a non-empty SQL type such as 'text' or 'numeric(10,2)'")
    why = type_problem(value.strip())
    if why:
        raise problem(why)
    return value.strip()


SqlType = Annotated[
    str,
    BeforeValidator(_sql_type),
    Field(description="A PostgreSQL type: text, bigint, numeric(10,2), timestamptz, ..."),
]


# -- numbers and flags ---------------------------------------------------------------------------
def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise problem(f"must be true or false, got {value!r}")
    return value


Flag = Annotated[bool, BeforeValidator(_flag)]


def whole_number(minimum: int) -> Any:
    """An int >= minimum; `true` and `"500"` are refused, not converted."""

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise problem(f"must be a whole number >= {minimum}, got {value!r}")
        return value

    return Annotated[int, Field(ge=minimum), BeforeValidator(check)]


# -- names -----------------------------------------------------------------------------------------
def _identifier(value: Any) -> str:
    why = identifier_problem(value)
    if why:
        raise problem(f"identifier {why}", kind=UNSAFE_IDENTIFIER)
    return value


Identifier = Annotated[
    str,
    BeforeValidator(_identifier),
    Field(description="A PostgreSQL name, written as is: it is quoted, so any case and characters"),
]


def _one_or_more_names(value: Any) -> list[Any]:
    """`columns: id` is `columns: [id]`."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise problem("must be a non-empty list of names")
    return value


def a_list(message: str, non_empty: bool = False) -> Callable[[Any], list[Any]]:
    """A list (non-empty if asked), or `message`."""

    def check(value: Any) -> list[Any]:
        if not isinstance(value, list) or (non_empty and not value):
            raise problem(message)
        return value

    return check


Names = Annotated[
    list[Identifier],
    BeforeValidator(
        _one_or_more_names,
        json_schema_input_type=Identifier | Annotated[list[Identifier], Field(min_length=1)],
    ),
]


class TableMapping(SpecModel):
    """A table named by its parts, for names holding a dot."""

    schema_: Identifier | None = Field(None, alias="schema")
    """Default: public."""
    name: Identifier

    def table_name(self) -> TableName:
        return TableName(self.schema_ or "public", self.name)


def _split_table_text(value: Any) -> Any:
    """`sales.users` -> {schema: sales, name: users}; a mapping goes on to TableMapping."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        raise problem(f"must be a table name, got {describe(value)}")
    parsed = TableName.parse(value)
    for part in (parsed.schema, parsed.name):
        why = identifier_problem(part)
        if why:
            raise problem(f"identifier {why}", kind=UNSAFE_IDENTIFIER)
    return {"schema": parsed.schema, "name": parsed.name}


def _table_ref_schema(_source: Any, handler: Any) -> core_schema.CoreSchema:
    mapping = handler.generate_schema(TableMapping)
    as_written = core_schema.union_schema([core_schema.str_schema(), mapping])
    return core_schema.no_info_after_validator_function(
        TableMapping.table_name,
        core_schema.no_info_before_validator_function(
            _split_table_text, mapping, json_schema_input_schema=as_written
        ),
    )


# A table: `users`, `sales.users` or {schema, name}; validated into an identifiers.TableName
TableRef = Annotated[
    TableName,
    GetPydanticSchema(_table_ref_schema),
    Field(description="A table: users, sales.users, or {schema, name} for names holding a dot"),
]
TableList = Annotated[list[TableRef], BeforeValidator(a_list("must be a list of table names"))]
