"""Ordering migrations by depends_on, without a database."""

from __future__ import annotations

import pytest

from migration_dags.errors import MigrationGraphError, UnknownMigrationError
from migration_dags.migration_set import MigrationSet

pytestmark = pytest.mark.offline


def add(folder, name, depends_on=()):
    deps = ", ".join(depends_on)
    (folder / f"{name}.yaml").write_text(
        f"name: {name}\ndepends_on: [{deps}]\n"
        "operations: [{raw_sql: {up: 'select 1', down: 'select 1'}}]\n"
    )


def test_orders_dependencies_first(migrations_dir):
    add(migrations_dir, "c_third", ["b_second"])
    add(migrations_dir, "a_first")
    add(migrations_dir, "b_second", ["a_first"])
    names = [m.name for m in MigrationSet.load(migrations_dir).ordered()]
    assert names == ["a_first", "b_second", "c_third"]


def test_among_migrations_ready_together_the_first_name_goes_first(migrations_dir):
    add(migrations_dir, "a_needs_c", ["c_root"])
    add(migrations_dir, "b_root")
    add(migrations_dir, "c_root")
    add(migrations_dir, "d_head", ["a_needs_c", "b_root"])
    names = [m.name for m in MigrationSet.load(migrations_dir).ordered()]
    assert names == ["b_root", "c_root", "a_needs_c", "d_head"]


def test_a_cycle_is_named_in_depends_on_order_from_its_first_file(migrations_dir):
    add(migrations_dir, "b", ["a"])
    add(migrations_dir, "a", ["c"])
    add(migrations_dir, "c", ["b"])
    with pytest.raises(MigrationGraphError) as info:
        MigrationSet.load(migrations_dir)
    assert str(info.value) == f"{migrations_dir / 'a.yaml'}: depends_on: cycle a -> c -> b -> a"


def test_cycle_is_an_error_naming_the_cycle(migrations_dir):
    add(migrations_dir, "a", ["c"])
    add(migrations_dir, "b", ["a"])
    add(migrations_dir, "c", ["b"])
    with pytest.raises(MigrationGraphError) as info:
        MigrationSet.load(migrations_dir)
    assert "cycle" in str(info.value) and "->" in str(info.value)


def test_two_heads_is_an_error(migrations_dir):
    add(migrations_dir, "base")
    add(migrations_dir, "left", ["base"])
    add(migrations_dir, "right", ["base"])
    with pytest.raises(MigrationGraphError) as info:
        MigrationSet.load(migrations_dir)
    assert "heads" in str(info.value) and "left" in str(info.value) and "right" in str(info.value)


def test_missing_dependency_names_the_file(migrations_dir):
    add(migrations_dir, "a", ["ghost"])
    with pytest.raises(MigrationGraphError) as info:
        MigrationSet.load(migrations_dir)
    assert "a.yaml" in str(info.value) and "ghost" in str(info.value)


def test_unknown_migration_lists_known_ones(migrations_dir):
    add(migrations_dir, "only")
    with pytest.raises(UnknownMigrationError) as info:
        MigrationSet.load(migrations_dir).get("other")
    assert "only" in str(info.value)


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(MigrationGraphError):
        MigrationSet.load(tmp_path / "absent")
