"""Operation types by the key a migration file uses for them. One module per type.

Every module of this package is imported here, and each operation class registers itself
(`class AddColumn(Operation, kind="add_column", spec=AddColumnSpec)`), so a new operation type is
exactly one new module.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import OPERATION_TYPES, Operation

for _module in pkgutil.iter_modules(__path__):
    if not _module.ispkg:
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["OPERATION_TYPES", "Operation"]
