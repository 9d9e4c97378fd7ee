"""Outcomes as the Dagster UI shows them: one CheckOutcome per expectation, whichever path ran it.

    name         <suite>.<expectation type>[<columns>]   (unique within the suite)
    description  the expectation's `description` in the file, else its type and kwargs;
                 "[warning] " in front when its GX severity is not critical;
                 " (partition K)" after it for a per-partition run
    observed     unexpected_count for row-level expectations, observed_value otherwise,
                 "error: ..." when the expectation could not run
    samples      up to 20 keys of offending rows (`42`, or `(42, eu)` for a composite key);
                 the offending values when the table has no key
"""

from __future__ import annotations

from typing import Any, Iterable

from ..reports import CheckFamily, CheckOutcome
from .files import Expectation

SAMPLE_LIMIT = 20


def outcome(exp: Expectation, partition: str | None, passed: bool, observed: int | str,
            samples: list[str]) -> CheckOutcome:
    where = f" (partition {partition})" if partition else ""
    return CheckOutcome(exp.name, exp.description + where, bool(passed), observed,
                        samples[:SAMPLE_LIMIT], CheckFamily.SUITE, exp.suite)


def format_key(values: Iterable[Any]) -> str:
    values = list(values)
    if len(values) == 1:
        return str(values[0])
    return "(" + ", ".join(str(v) for v in values) + ")"


def row_sample(row: Any, key: tuple[str, ...]) -> str:
    """An offending row as its key when it carries the key columns, else as col=value pairs."""
    if isinstance(row, dict):
        if key and all(k in row for k in key):
            return format_key(row[k] for k in key)
        return ", ".join(f"{k}={v}" for k, v in row.items())
    return str(row)
