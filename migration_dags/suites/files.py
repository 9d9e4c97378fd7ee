"""Suite files: expectations/<suite>.json, GX 1.x's own suite JSON, read without importing GX.

Reading checks the shape we rely on (name, expectations with type and kwargs, the table in
meta.migration_dags) and names the file and field of anything wrong in a one-line SpecError.
Whether each expectation's kwargs are valid for its type is GX's to judge: `gx_path` asks it
before anything runs (`build_gx_suite`); the SQL path only takes kwargs it understands fully and
hands everything else to GX.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import SpecError
from ..identifiers import TableName
from ..settings import expectations_dir
from ..spec.problems import spec_error
from ..spec.types import Names, SpecModel, TableRef

SUITE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# Keys GX writes for one expectation (ExpectationConfiguration's fields).
EXPECTATION_KEYS = {
    "type", "kwargs", "meta", "id", "notes", "description", "severity",
    "rendered_content", "expectation_context", "success_on_last_run",
}


class SuiteTarget(SpecModel):
    """meta.migration_dags of a suite file: what the suite validates."""

    table: TableRef
    key: Names | None = None
    """Columns that identify a row in reports; default: the table's primary key."""


@dataclass(frozen=True)
class Expectation:
    index: int
    type: str
    kwargs: dict[str, Any]
    raw: dict[str, Any]  # the JSON object as written in the file
    name: str  # check name: "<suite>.<type>[<columns>]", unique within the suite
    suite: str

    @property
    def field(self) -> str:
        return f"expectations[{self.index}]"

    @property
    def severity(self) -> str:
        return str(self.raw.get("severity") or "critical")

    @property
    def description(self) -> str:
        text = self.raw.get("description")
        if not text:
            args = ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in self.kwargs.items())
            text = f"{self.type}({args})"
        return text if self.severity == "critical" else f"[{self.severity}] {text}"


@dataclass(frozen=True)
class Suite:
    name: str
    file: Path
    table: TableName
    key: tuple[str, ...] | None  # meta.migration_dags.key; None: the table's primary key
    expectations: tuple[Expectation, ...]
    data: dict[str, Any] = field(repr=False)


def suite_path(name: str, folder: str | Path | None = None) -> Path:
    return expectations_dir(folder) / f"{name}.json"


def load_suite(name: str, folder: str | Path | None = None) -> Suite:
    path = suite_path(name, folder)
    file = str(path)
    if not SUITE_NAME.match(name):
        raise SpecError(file, "(file)", f"{name!r} is not a suite name (letters, digits, _ . -)")
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise SpecError(
            file, "(file)",
            f"suite {name!r} not found; write it as GX suite JSON there, or remove it from "
            "validation.suites",
        ) from exc
    except OSError as exc:
        raise SpecError(file, "(file)", f"cannot read: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(file, f"line {exc.lineno}", f"not valid JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise SpecError(file, "(top level)", "must be a JSON object (a GX expectation suite)")
    if data.get("name") != name:
        raise SpecError(file, "name", f"is {data.get('name')!r} but the file is {path.name!r}; make them match")
    table, key = _target(file, data)
    raw = data.get("expectations")
    if not isinstance(raw, list) or not raw:
        raise SpecError(file, "expectations", "must be a non-empty list of expectations")
    expectations = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        where = f"expectations[{index}]"
        if not isinstance(item, dict):
            raise SpecError(file, where, "must be an object with type and kwargs")
        kind = item.get("type")
        if not isinstance(kind, str) or not kind:
            raise SpecError(file, f"{where}.type", "is required: a GX expectation type such as "
                            "expect_column_values_to_not_be_null")
        kwargs = item.get("kwargs", {})
        if not isinstance(kwargs, dict):
            raise SpecError(file, f"{where}.kwargs", "must be an object")
        extra = sorted(set(item) - EXPECTATION_KEYS)
        if extra:
            raise SpecError(file, f"{where}.{extra[0]}", "unknown field (GX writes type, kwargs, meta, "
                            "description, severity, id, notes)")
        check_name = f"{name}.{kind}{_columns(kwargs)}"
        if check_name in seen:
            check_name = f"{check_name}#{index}"
        seen.add(check_name)
        expectations.append(Expectation(index, kind, dict(kwargs), item, check_name, name))
    return Suite(name, path, table, key, tuple(expectations), data)


def _target(file: str, data: dict) -> tuple[TableName, tuple[str, ...] | None]:
    meta = data.get("meta")
    ours = meta.get("migration_dags") if isinstance(meta, dict) else None
    if ours is None:
        raise SpecError(file, "meta.migration_dags", 'is required: {"table": "public.users"} '
                        "names the table this suite validates")
    try:
        target = SuiteTarget.model_validate(ours)
    except ValidationError as exc:
        raise spec_error(file, exc, prefix="meta.migration_dags") from None
    return target.table, (tuple(target.key) if target.key else None)


def _columns(kwargs: dict) -> str:
    if isinstance(kwargs.get("column"), str):
        return f"[{kwargs['column']}]"
    if isinstance(kwargs.get("column_A"), str) and isinstance(kwargs.get("column_B"), str):
        return f"[{kwargs['column_A']},{kwargs['column_B']}]"
    cols = kwargs.get("column_list")
    if isinstance(cols, list) and all(isinstance(c, str) for c in cols):
        return "[" + ",".join(cols) + "]"
    return ""
