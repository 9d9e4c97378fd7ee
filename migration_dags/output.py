"""How the CLI prints: one table for findings, JSON for machines, colour only on a terminal.

Colour is used only when the stream is a terminal and NO_COLOR (no-color.org) is not set, so
logs, pipes and CI output stay plain text.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Sequence, TextIO

_CODES = {"red": "31", "green": "32", "yellow": "33", "bold": "1", "dim": "2"}


def colour_on(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stdout
    return not os.environ.get("NO_COLOR") and hasattr(stream, "isatty") and stream.isatty()


def paint(text: str, colour: str, stream: TextIO | None = None) -> str:
    if not colour_on(stream):
        return text
    return f"\033[{_CODES[colour]}m{text}\033[0m"


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], colours: dict[str, str] | None = None
          ) -> str:
    """A plain text table; a cell whose text is a key of `colours` is painted that colour (on a
    terminal only). The last column is not padded, so long messages do not widen the others."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    def line(values: Sequence[str]) -> str:
        parts = []
        for i, v in enumerate(values):
            padded = v if i == len(values) - 1 else v.ljust(widths[i])
            if colours and v in colours:
                padded = padded.replace(v, paint(v, colours[v]), 1)
            parts.append(padded)
        return "  ".join(parts).rstrip()
    out = [paint(line(list(headers)), "bold")]
    out += [line(r) for r in cells]
    return "\n".join(out)
