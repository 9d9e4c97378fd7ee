"""Hypothesis strategies: malformed migration files, made by mutating a valid one.

Every mutation is malformed by construction (not by luck): a statement separator, comment, dollar
quote or stray bracket put into an expression, deep nesting, a wrong type, an unknown key, a huge
value, a YAML tag, an alias bomb, a duplicate key, a function with side effects, an unknown column.
`malformed()` draws (text, at_load): at_load says whether loading alone must refuse it (False for
mistakes only the live catalog shows, such as an unknown column).

The valid file plans cleanly against USERS_SQL's table.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml
from hypothesis import strategies as st

USERS_SQL = """
CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL,
                    created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO users SELECT g, 'u' || g || '@x', now() - g * interval '1 day'
FROM generate_series(1, 20) g;
"""

VALID: dict[str, Any] = {
    "name": "m",
    "tables": ["users"],
    "settings": {"batch_size": 10},
    "operations": [
        {"add_column": {"table": "users", "column": {"name": "flag", "type": "boolean",
                                                     "default": "false"}, "up": "id % 2 = 0"}},
        {"backfill": {"table": "users", "set": {"flag": "id > 3"}, "where": "created_at < now()"}},
        {"add_check": {"table": "users", "name": "flag_set", "check": "flag IS NOT NULL"}},
        {"create_index": {"name": "users_created", "table": "users", "columns": ["created_at"],
                          "where": "created_at > '2000-01-01'"}},
        {"alter_column": {"table": "users", "column": "email", "type": "varchar(200)",
                          "up": "email::varchar(200)", "down": "email::text"}},
        {"raw_sql": {"up": "CREATE VIEW v AS SELECT 1 AS one", "down": "DROP VIEW IF EXISTS v"}},
    ],
}

# (operation index, path below the operation's body) of every expression in VALID
EXPRESSIONS = [
    (0, ("column", "default")), (0, ("up",)), (1, ("set", "flag")), (1, ("where",)),
    (2, ("check",)), (3, ("where",)), (4, ("up",)), (4, ("down",)),
]
TYPES = [(0, ("column", "type")), (4, ("type",))]
KINDS = ["add_column", "backfill", "add_check", "create_index", "alter_column", "raw_sql"]

# what follows each of these is read after the damage is done: the result is never one expression
BREAKERS = ["; ", ";", " -- ", "--", ") ", ")", "]", " /* ", " $$", " $x$", " $1", " $2 "]
SIDE_EFFECTS = ["pg_sleep(1) IS NULL", "pg_terminate_backend(1)", "pg_cancel_backend(1)",
                "set_config('a.b', 'c', false) = 'c'", "lo_unlink(1) = 1", "nextval('s') > 0",
                "dblink_exec('x') = 'y'", "pg_read_file('/etc/passwd') <> ''",
                "app.anything(id)", "public.f()", "pg_advisory_lock(1) IS NULL"]
NOT_TYPES = ["boolean; drop table users", "int) , (1", "int -- x", "text DEFAULT 'x'",
             "int::text", "1", "varchar(", "$$text$$", "int; select 1"]

text_tail = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)


def _body(spec: dict, index: int) -> dict:
    (kind,) = spec["operations"][index]
    return spec["operations"][index][kind]


def _set(spec: dict, index: int, path: tuple[str, ...], value: Any) -> None:
    node = _body(spec, index)
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _get(spec: dict, index: int, path: tuple[str, ...]) -> Any:
    node = _body(spec, index)
    for key in path:
        node = node[key]
    return node


def dump(spec: dict) -> str:
    return yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=10_000)


@st.composite
def broken_expression(draw):
    spec = copy.deepcopy(VALID)
    index, path = draw(st.sampled_from(EXPRESSIONS))
    original = _get(spec, index, path)
    how = draw(st.sampled_from(["breaker", "nest", "long", "side_effect", "not_text"]))
    if how == "breaker":
        value = original + draw(st.sampled_from(BREAKERS)) + draw(text_tail)
    elif how == "nest":
        depth = draw(st.sampled_from([101, 150, 1_000, 50_000]))  # 50,000: the trials' RecursionError
        value = "(" * depth + original + ")" * depth
    elif how == "long":
        value = " + ".join(["1"] * draw(st.sampled_from([2_600, 6_000])))
    elif how == "side_effect":
        value = draw(st.sampled_from(SIDE_EFFECTS))
        if path == ("column", "default") and value.startswith("nextval"):
            _set(spec, index, path, value)  # a column default may take a sequence's next value:
            return dump(spec), False        # only the catalog knows sequence s does not exist
    else:
        value = draw(st.sampled_from([[original], {"sql": original}, True, False, [], {}]))
    _set(spec, index, path, value)
    return dump(spec), True


@st.composite
def broken_type(draw):
    spec = copy.deepcopy(VALID)
    index, path = draw(st.sampled_from(TYPES))
    _set(spec, index, path, draw(st.one_of(st.sampled_from(NOT_TYPES), st.sampled_from([[], {}, True]))))
    return dump(spec), True


@st.composite
def wrong_shape(draw):
    spec = copy.deepcopy(VALID)
    where = draw(st.sampled_from(["name", "tables", "settings", "operations", "batch_size",
                                  "table", "column", "columns", "set", "kind"]))
    bad = draw(st.sampled_from([7, -1, True, [], {}, "many", [{"x": 1}]]))
    if where == "name":
        spec["name"] = bad if bad != "many" else "Many Names"
    elif where == "tables":
        spec["tables"] = bad if bad not in ([],) else 7
    elif where == "settings":
        spec["settings"] = bad if bad != {} else []
    elif where == "operations":
        spec["operations"] = bad if bad != [{"x": 1}] else [{"drop_everything": {}}]
    elif where == "batch_size":
        spec["settings"]["batch_size"] = bad if bad not in (7, [{"x": 1}]) else 0
    elif where == "table":
        _body(spec, draw(st.integers(0, 4)))["table"] = bad if bad != "many" else 7
    elif where == "column":
        _body(spec, 0)["column"] = bad if bad != {} else {"type": "int"}
    elif where == "columns":
        _body(spec, 3)["columns"] = bad if bad not in ("many",) else []
    elif where == "set":
        _body(spec, 1)["set"] = bad if bad != "many" else {}
    else:
        index = draw(st.integers(0, len(KINDS) - 1))
        spec["operations"][index] = {KINDS[index] + "s": _body(spec, index)}
    return dump(spec), True


@st.composite
def unknown_key(draw):
    spec = copy.deepcopy(VALID)
    key = "x_" + draw(st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12))
    target = draw(st.sampled_from(["top", "settings", "body", "column"]))
    node = {"top": spec, "settings": spec["settings"], "body": _body(spec, draw(st.integers(0, 5))),
            "column": _body(spec, 0)["column"]}[target]
    node[key] = draw(st.one_of(st.text(max_size=10), st.integers(), st.booleans()))
    return dump(spec), True


@st.composite
def yaml_trouble(draw):
    text = dump(VALID)
    how = draw(st.sampled_from(["tag", "laughs", "deep", "duplicate", "huge", "loop"]))
    if how == "tag":
        tag = draw(st.sampled_from(["!!python/object/apply:os.system ['id']", "!!str", "!!binary",
                                    "!custom", "!!python/name:os.system", "!<tag:x.org,2002:y>"]))
        text = text.replace("name: m", f"name: {tag} m", 1) if draw(st.booleans()) else \
            text.replace("batch_size: 10", f"batch_size: {tag} 10", 1)
    elif how == "laughs":
        rows = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
        rows += [f"{b}: &{b} [{', '.join([f'*{a}'] * 10)}]" for a, b in zip("abcdef", "bcdefg")]
        text = text.replace("tables:", "\n".join(rows) + "\ntables:", 1)
    elif how == "deep":
        depth = draw(st.sampled_from([65, 100, 5_000]))
        text += "deep: " + "[" * depth + "]" * depth + "\n"
    elif how == "duplicate":
        text += draw(st.sampled_from(["name: m\n", "operations: []\n",
                                      "operations:\n- raw_sql: {up: 'DROP TABLE users', down: 'SELECT 1'}\n"]))
    elif how == "huge":
        text += "description: '" + "x" * (1024 * 1024) + "'\n"
    else:
        text = text.replace("tables: [users]", "tables: &t [*t]", 1).replace(
            "tables:\n- users", "tables: &t [*t]", 1)
    return text, True


@st.composite
def catalog_mistake(draw):
    """Well-formed, but wrong for the live database: only plan's catalog check refuses it."""
    spec = copy.deepcopy(VALID)
    index, path = draw(st.sampled_from([e for e in EXPRESSIONS if e[1] != ("column", "default")]))
    column = "nope_" + draw(st.text("abcdefghij", min_size=1, max_size=6))
    _set(spec, index, path, f"{column} IS NULL")
    return dump(spec), False


def malformed(at_load_only: bool = False):
    found = [broken_expression(), broken_type(), wrong_shape(), unknown_key(), yaml_trouble()]
    if not at_load_only:
        found.append(catalog_mistake())
    return st.one_of(found)
