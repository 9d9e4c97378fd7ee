"""Strict YAML: tags, alias bombs, deep nesting and huge files are refused with one line."""

from __future__ import annotations

import pytest

from migration_dags.errors import SpecError
from migration_dags.spec import load_migration
from migration_dags.spec.strict_yaml import MAX_FILE_BYTES

pytestmark = pytest.mark.offline

OPS = "operations: [{raw_sql: {up: 'select 1', down: 'select 2'}}]\n"
LAUGHS = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
    for prev, name in zip("abcdefgh", "bcdefghi")
)

CASES = {
    "python_tag": (
        "name: m\noperations:\n  - raw_sql: {up: !!python/object/apply:os.system ['id'], down: x}\n",
        "line 3", "tags are not allowed"),
    "plain_tag": ("name: !!str m\n" + OPS, "line 1", "tags are not allowed"),
    "local_tag": ("name: m\nsettings: !custom {retries: 1}\n" + OPS, "line 2", "tags are not allowed"),
    "billion_laughs": ("name: m\na: &a [x, x, x, x, x, x, x, x, x]\n" + LAUGHS + OPS,
                       None, "expand to more than"),
    "alias_loop": ("name: m\na: &a [*a]\n" + OPS, "line 2", "contains it"),
    "deep_nesting": ("name: m\nx: " + "[" * 50_000 + "]" * 50_000 + "\n" + OPS, "line 2", "deeper than 64"),
    "deep_mappings": ("name: m\nx: " + "{a: " * 70 + "1" + "}" * 70 + "\n" + OPS, "line 2", "deeper than 64"),
    "huge_file": ("name: m\n" + OPS + "# " + "x" * MAX_FILE_BYTES + "\n", "(file)", "larger than"),
    "not_utf8": (b"name: m\n# \xff\xfe\n" + OPS.encode(), "(file)", "not UTF-8"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_what_a_migration_file_does_not_need_is_refused_in_one_line(migrations_dir, case):
    text, where, words = CASES[case]
    path = migrations_dir / "m.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(SpecError) as caught:
        load_migration(path)
    assert words in caught.value.message
    if where is not None:
        assert caught.value.field == where
    assert len(str(caught.value)) < 300 and "\n" not in str(caught.value)


def test_a_few_aliases_and_a_merge_key_still_load(migrations_dir):
    path = migrations_dir / "m.yaml"
    path.write_text(
        "name: m\n"
        "defaults: &d {batch_size: 10, retries: 1}\n"
        "settings: {<<: *d, retries: 2}\n"
        "operations: [{raw_sql: {up: 'select 1', down: 'select 2'}}]\n".replace("defaults: &d", "x-d: &d")
    )
    with pytest.raises(SpecError) as caught:  # an unknown top-level key is still an error...
        load_migration(path)
    assert caught.value.field == "x-d"
    path.write_text(  # ...but aliases within bounds are read
        "name: m\n"
        "settings: {batch_size: &n 10, partition_rows: *n}\n"
        "operations: [{raw_sql: {up: 'select 1', down: 'select 2'}}]\n"
    )
    m = load_migration(path)
    assert m.settings.batch_size == m.settings.partition_rows == 10
