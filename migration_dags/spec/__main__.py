"""python -m migration_dags.spec: regenerate migration.schema.json from the models."""

from .json_schema import write_schema_file

print(f"wrote {write_schema_file()}")
