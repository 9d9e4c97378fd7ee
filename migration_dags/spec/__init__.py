"""Migration files: YAML in, a checked `Migration` out, or a one-line SpecError naming file and field.

    models.py        what a migration file may hold, declared (pydantic)
    types.py         the field types those models are written in (identifiers, tables, SQL, ...)
    problems.py      a validator's problem -> SpecError(file, field path, message)
    strict_yaml.py   YAML that refuses a key written twice
    loader.py        load_migration(path) -> Migration
    migration.py     Migration (with MigrationSettings, ValidationSpec): the loaded file
    json_schema.py   the JSON Schema of a migration file, for editors (migration.schema.json)
"""

from .json_schema import migration_json_schema
from .loader import load_migration
from .migration import Migration, MigrationSettings, ValidationSpec
from .models import NAME_PATTERN

__all__ = [
    "Migration",
    "MigrationSettings",
    "NAME_PATTERN",
    "ValidationSpec",
    "load_migration",
    "migration_json_schema",
]
