"""load_migration: a migration file in, a checked `Migration` out, or one SpecError line.

Three stages, each naming the file and the field of the first problem: reading the YAML (strictly,
strict_yaml.py: at most 1 MiB, no key twice, no tags, no deep nesting, no alias bombs), validating it against the declared models (models.py and each
operation's body), and building the operation objects from the validated bodies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import SpecError
from ..operations.base import OPERATION_TYPES, Operation
from .migration import Migration
from .models import allow_functions_of, migration_file_model
from .problems import spec_error
from .strict_yaml import MAX_FILE_BYTES, StrictYamlError, load_strict


def load_migration(path: Path) -> Migration:
    file = str(path)
    data = _read_yaml(path)
    if data is None:
        raise SpecError(file, "(top level)", "the file is empty; a migration needs name and operations")
    try:
        context = {"file_name": path.name, "allow_functions": allow_functions_of(data)}
        spec = migration_file_model().model_validate(data, context=context)
    except ValidationError as exc:
        raise spec_error(file, exc) from None
    operations = [_operation(file, index, item) for index, item in enumerate(spec.operations)]
    return Migration(
        name=spec.name,
        description=spec.description,
        file=path,
        depends_on=list(spec.depends_on),
        database_url_env=spec.database.url_env if spec.database else None,
        tables=list(spec.tables),
        settings=spec.settings.settings(),
        validation=spec.validation.spec(),
        operations=operations,
        schedule=spec.schedule.schedule() if spec.schedule else None,
        auto_complete=spec.auto_complete,
        allow_functions=tuple(spec.allow_functions),
        tenants=spec.tenants.tenants() if spec.tenants else None,
    )


def _read_yaml(path: Path) -> Any:
    file = str(path)
    try:
        with path.open("rb") as handle:  # read no more than the limit, whatever the file's size
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SpecError(file, "(file)", f"cannot read: {exc.strerror}") from exc
    if len(raw) > MAX_FILE_BYTES:
        raise SpecError(file, "(file)", f"is larger than {MAX_FILE_BYTES // 1024} KiB; a migration "
                        "file is a few kilobytes: move data out of it")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(file, "(file)", f"is not UTF-8 text (byte {exc.start})") from None
    try:
        return load_strict(text)
    except StrictYamlError as exc:
        where = exc.path or f"line {exc.problem_mark.line + 1}"
        raise SpecError(file, where, exc.problem) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(file)"
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise SpecError(file, where, f"not valid YAML: {problem}") from exc


def _operation(file: str, index: int, item: Any) -> Operation:
    return OPERATION_TYPES[item.kind](item.body, index, file)
