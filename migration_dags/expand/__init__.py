"""The expanded state: between `up` (which stops after validation) and `complete`, both shapes of
every table the migration changes work for reads and writes (pgroll's start / complete).

    version_schema.py   the schema `<schema>_<migration>` of views showing the new shape, which a
                        new release puts first on its search_path
    old_shape_writes.py the count of writes still made in the old shape, and the quiet-period
                        check `complete` makes before it contracts
"""

from .old_shape_writes import (
    CompleteOptions,
    OldShapeWrites,
    count_actions,
    drop_count_actions,
    read_old_shape_writes,
    require_quiet,
)
from .version_schema import (
    VERSION_SCHEMA_MARK,
    create_actions,
    drop_actions,
    version_schema_name,
    version_schemas_of,
)

__all__ = [
    "CompleteOptions", "OldShapeWrites", "VERSION_SCHEMA_MARK", "count_actions", "create_actions",
    "drop_actions", "drop_count_actions", "read_old_shape_writes", "require_quiet",
    "version_schema_name", "version_schemas_of",
]
