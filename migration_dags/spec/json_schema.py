"""The JSON Schema of a migration file, generated from the models, for editors and CI.

migration.schema.json beside this module is its shipped copy; a test keeps it equal to
`migration_json_schema()`. After changing a model, regenerate it:

    python -m migration_dags.spec
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from .models import migration_file_model

SCHEMA_FILE = Path(__file__).with_name("migration.schema.json")
DIALECT = "https://json-schema.org/draft/2020-12/schema"


class _WithoutFieldTitles(GenerateJsonSchema):
    """Titles only for models: a field's title would repeat its key ("Batch Size")."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def migration_json_schema() -> dict[str, Any]:
    schema = migration_file_model().model_json_schema(
        mode="validation", schema_generator=_WithoutFieldTitles
    )
    return {"$schema": DIALECT, **schema}


def write_schema_file() -> Path:
    SCHEMA_FILE.write_text(json.dumps(migration_json_schema(), indent=2, ensure_ascii=False) + "\n")
    return SCHEMA_FILE
