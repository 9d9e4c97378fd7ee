"""Partition keys that say which key range they cover."""

from __future__ import annotations

import pytest

from migration_dags.orchestration.partitions import NOTHING_TO_BACKFILL, engine_partition, range_words

pytestmark = pytest.mark.offline


def test_range_words_name_the_bounds():
    assert range_words(["id"], None, ["25000"]) == "id <=25000"
    assert range_words(["id"], ["25000"], ["50000"]) == "id >25000 <=50000"
    assert range_words(["id"], ["975000"], None) == "id >975000"
    assert range_words(["id"], None, None) == "id all"
    assert range_words(["tenant", "id"], ["a", "7"], None) == "(tenant/id) >(a/7)"


def test_odd_values_are_made_printable_and_short():
    words = range_words(["name"], ["x...y\nz" + "w" * 40], None)
    assert "..." not in words and "\n" not in words and len(words) < 40


def test_engine_key_comes_back_from_the_dagster_key():
    assert engine_partition("00-00003 id >150 <=200") == "00-00003"
    assert engine_partition(NOTHING_TO_BACKFILL) is None
