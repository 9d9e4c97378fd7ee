"""SQL a migration file holds, read with PostgreSQL's own parser (pglast wraps libpg_query).

Operations paste expressions into DDL, trigger bodies and batch statements, so an expression that
is not exactly one expression can run a statement of its own (`default: "false; drop table users"`)
or change the statement around it (`where: "id < 3) or (true"`). Each kind of fragment is checked
here, before anything runs:

    expression_problem   one expression: `SELECT (<text>)` and `SELECT <text>` each parse to one
                         SELECT with one target and nothing else, the text's own brackets balance,
                         no `;`, no comment, no dollar quote (trigger bodies are dollar-quoted), no
                         parameter, no INSERT/UPDATE/DELETE/MERGE or SELECT INTO inside
    type_problem         one type name: `SELECT NULL::<text>` is one cast of NULL
    query_problem        one SELECT (backfill insert.select), no SELECT INTO, no data-modifying CTE
    statements           raw_sql: the statements, each as written (the one place for statements)

Functions an expression calls are checked by functions.py. Every check scans the text first (a
flat lexer, safe on any input) and refuses more tokens than a migration needs: libpg_query
crashes the process on very deeply nested input instead of raising.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from pglast import ast, parse_sql
from pglast.parser import ParseError, scan

# An expression of a few thousand tokens is already unreadable; libpg_query has crashed (SIGSEGV)
# on ~50,000 tokens of nested operators, so the limits stay well below that.
MAX_EXPRESSION_TOKENS = 5_000
MAX_STATEMENTS_TOKENS = 20_000
MAX_BRACKET_DEPTH = 100

_OPEN = {"ASCII_40": "(", "ASCII_91": "["}
_CLOSE = {"ASCII_41": "(", "ASCII_93": "["}
_WRITES = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)


@dataclass(frozen=True)
class FunctionName:
    schema: str | None
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


class SqlProblem(ValueError):
    """Why a fragment is refused, in words for the SpecError message."""


def short(text: str, limit: int = 60) -> str:
    """A fragment of user SQL fit for a one-line message."""
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 3] + "..."


def _parse_error(exc: ParseError) -> str:
    message = str(exc.args[0]) if exc.args else "syntax error"
    head, sep, near = message.partition(" at or near ")
    return f"{head} at or near {short(near, 40)}" if sep else short(message, 120)


def _tokens(text: str, limit: int) -> list[Any]:
    if len(text) > limit * 20:  # longer than `limit` tokens could be: no need to scan it
        raise SqlProblem(f"is too long: {len(text)} characters")
    try:
        tokens = scan(text)
    except ParseError as exc:
        raise SqlProblem(f"is not valid SQL: {_parse_error(exc)}") from None
    if len(tokens) > limit:
        raise SqlProblem(f"is too long: {len(tokens)} tokens, at most {limit}")
    return tokens


def _plain_tokens(text: str, limit: int) -> None:
    """No comment, no dollar quote, no $1, and brackets that close inside the text itself."""
    depth: list[str] = []
    for token in _tokens(text, limit):  # pglast gives offsets in characters
        piece, rest = text[token.start : token.end + 1], text[token.start :]
        if token.name in ("SQL_COMMENT", "C_COMMENT"):
            raise SqlProblem(f"must not hold a comment ({short(piece, 30)})")
        if token.name == "SCONST" and piece.startswith("$"):
            raise SqlProblem("must not hold a dollar-quoted string; write it as 'text'")
        if token.name == "ASCII_59":
            raise SqlProblem("must be one expression, not statements (found ';')")
        if token.name == "PARAM":
            raise SqlProblem(f"must not hold a parameter ({piece})")
        if token.name in _OPEN:
            depth.append(_OPEN[token.name])
            if len(depth) > MAX_BRACKET_DEPTH:
                raise SqlProblem(f"nests brackets deeper than {MAX_BRACKET_DEPTH} levels")
        elif token.name in _CLOSE:
            if not depth or depth.pop() != _CLOSE[token.name]:
                raise SqlProblem(f"closes a bracket it did not open (at {short(rest, 30)!r})")
    if depth:
        # `{type: numeric(19,4)}`: in a YAML flow mapping the comma ended the value
        cut = "," not in text
        raise SqlProblem("leaves a bracket open" + (
            " (in a YAML `{...}` mapping a comma ends the value: quote it, e.g. "
            "\"numeric(19,4)\")" if cut else ""))


def _parse(sql: str) -> list[ast.RawStmt]:
    try:
        return list(parse_sql(sql))
    except ParseError as exc:
        raise SqlProblem(f"is not valid SQL: {_parse_error(exc)}") from None
    except RecursionError:
        raise SqlProblem("nests too deeply") from None


def walk(node: Any) -> Iterator[ast.Node]:
    """Every node below `node`, without recursion (deep trees do not exhaust the stack)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, ast.Node):
            yield item
            for slot in item.__slots__:
                value = getattr(item, slot, None)
                if isinstance(value, (ast.Node, list, tuple)):
                    stack.append(value)


def _no_writes(tree: Any) -> None:
    for node in walk(tree):
        if isinstance(node, _WRITES):
            raise SqlProblem(f"must not hold a {type(node).__name__.removesuffix('Stmt').upper()}")
        if isinstance(node, ast.SelectStmt) and node.intoClause is not None:
            raise SqlProblem("must not hold SELECT INTO (it creates a table)")


def _lone_target(stmts: list[ast.RawStmt]) -> Any:
    """The one target of `SELECT (<x>)`, or SqlProblem when the text added anything else."""
    if len(stmts) != 1:
        raise SqlProblem("must be one expression, not statements")
    select = stmts[0].stmt
    if not isinstance(select, ast.SelectStmt) or len(select.targetList or ()) != 1:
        raise SqlProblem("must be one expression")
    extras = ("distinctClause", "intoClause", "fromClause", "whereClause", "groupClause",
              "havingClause", "windowClause", "valuesLists", "sortClause", "limitOffset",
              "limitCount", "lockingClause", "withClause", "larg", "rarg")
    if any(getattr(select, name, None) for name in extras):
        raise SqlProblem("must be one expression")
    target = select.targetList[0]
    if target.name is not None:
        raise SqlProblem("must be one expression")
    return target.val


def function_calls(tree: Any) -> list[FunctionName]:
    found = []
    for node in walk(tree):
        if isinstance(node, ast.FuncCall):
            parts = [p.sval for p in node.funcname]
            found.append(FunctionName(parts[-2] if len(parts) > 1 else None, parts[-1]))
    return found


def column_names(text: str) -> set[str]:
    """Every name a column reference in the expression `text` uses (`price`, `t.price`: price);
    a superset of the columns it reads, for code that declares only those."""
    found = set()
    for node in walk(expression_tree(text)):
        if isinstance(node, ast.ColumnRef):
            found |= {f.sval for f in node.fields if isinstance(f, ast.String)}
    return found


def expression_tree(text: str) -> Any:
    """The parsed expression, or SqlProblem saying why `text` is not exactly one expression."""
    _plain_tokens(text, MAX_EXPRESSION_TOKENS)
    value = _lone_target(_parse(f"SELECT ({text})"))
    # and without the parentheses (some statements paste it bare): `SELECT 1`, `1 AS x` and
    # `1 FROM t` are one expression only inside them
    _lone_target(_parse(f"SELECT {text}"))
    _no_writes(value)
    return value


def expression_problem(text: str) -> str | None:
    try:
        expression_tree(text)
    except SqlProblem as exc:
        return str(exc)
    return None


def type_problem(text: str) -> str | None:
    """Why `text` is not one type name (`numeric(10,2)`, `timestamp with time zone`, `int[]`)."""
    try:
        _plain_tokens(text, 200)
        value = _lone_target(_parse(f"SELECT NULL::{text}"))
    except SqlProblem as exc:
        return f"is not one type name: {str(exc).removeprefix('must be one expression')}".rstrip(": ")
    if not (isinstance(value, ast.TypeCast) and isinstance(value.arg, ast.A_Const)
            and value.arg.isnull):
        return f"{short(text, 40)!r} is not one type name"
    return None


def query_tree(text: str) -> ast.SelectStmt:
    """One SELECT that reads only: no statement after it, no SELECT INTO, no INSERT/UPDATE/DELETE
    in a WITH. `text` is the query as it will run (placeholders already filled)."""
    _plain_tokens(text, MAX_STATEMENTS_TOKENS)
    stmts = _parse(text)
    if len(stmts) != 1 or not isinstance(stmts[0].stmt, ast.SelectStmt):
        raise SqlProblem("must be one SELECT")
    _no_writes(stmts[0].stmt)
    return stmts[0].stmt


def statements(text: str) -> list[str]:
    """raw_sql's statements, each as written (without its `;`)."""
    _tokens(text, MAX_STATEMENTS_TOKENS)
    stmts = _parse(text)
    if not stmts:
        raise SqlProblem("holds no statement")
    # pglast gives locations in characters; a length of 0 means "to the end"
    return [
        text[s.stmt_location : s.stmt_location + s.stmt_len if s.stmt_len else None].strip()
        for s in stmts
    ]
