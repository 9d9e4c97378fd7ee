"""The JSON Schema editors use: generated from the models, shipped, and in step with the loader."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from migration_dags.operations import OPERATION_TYPES
from migration_dags.spec import migration_json_schema
from migration_dags.spec.json_schema import SCHEMA_FILE
from pg_server import REPO

pytestmark = pytest.mark.offline

ASSETS = sorted((REPO / "assets").glob("*.yaml"))
MODELINE = "# yaml-language-server: $schema=../migration_dags/spec/migration.schema.json"


@pytest.fixture(scope="module")
def validator():
    schema = migration_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_shipped_schema_is_the_generated_one():
    shipped = json.loads(SCHEMA_FILE.read_text())
    assert shipped == migration_json_schema(), (
        f"{SCHEMA_FILE.name} is stale: regenerate it with `python -m migration_dags.spec` and commit it"
    )


def test_every_registered_operation_type_has_an_alternative():
    alternatives = migration_json_schema()["$defs"]["OperationItem"]["oneOf"]
    kinds = [key for alternative in alternatives for key in alternative["required"]]
    assert sorted(kinds) == sorted(OPERATION_TYPES)


@pytest.mark.parametrize("path", ASSETS, ids=lambda p: p.name)
def test_every_shipped_migration_is_valid_and_names_the_schema(validator, path):
    text = path.read_text()
    assert text.splitlines()[0] == MODELINE
    assert (path.parent / MODELINE.split("=", 1)[1]).resolve() == SCHEMA_FILE.resolve()
    validator.validate(yaml.safe_load(text))


GOOD = {
    "name": "m",
    "operations": [{"add_column": {"table": "users", "column": {"name": "c", "type": "int"}}}],
}
MALFORMED = {
    "unknown_operation": {**GOOD, "operations": [{"add_colum": {"table": "users"}}]},
    "two_kinds_in_one_item": {
        **GOOD, "operations": [{**GOOD["operations"][0], "raw_sql": {"up": "x", "down": "y"}}]},
    "no_operations": {**GOOD, "operations": []},
    "missing_name": {"operations": GOOD["operations"]},
    "missing_required_field": {**GOOD, "operations": [{"raw_sql": {"up": "SELECT 1"}}]},
    "wrong_type": {**GOOD, "settings": {"batch_size": "many"}},
    "below_minimum": {**GOOD, "settings": {"batch_size": 0}},
    "bad_literal": {**GOOD, "validation": {"row_count": "roughly"}},
    "extra_top_level_field": {**GOOD, "nmae": "m"},
    "extra_field_in_a_body": {
        **GOOD, "operations": [{"add_column": {**GOOD["operations"][0]["add_column"], "colum": {}}}]},
    "bad_name": {**GOOD, "name": "Bad-Name"},
}


def test_a_good_document_is_valid(validator):
    validator.validate(GOOD)


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_documents_are_rejected(validator, case):
    assert not validator.is_valid(MALFORMED[case])
