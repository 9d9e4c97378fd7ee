"""YAML read strictly: a key written twice in one mapping is refused, not silently the last one.

PyYAML's SafeLoader keeps the last of two equal keys, so `table: users` ... `table: orders` in one
operation would quietly migrate orders. StrictSafeLoader checks the document before building it
and names the key's path and both lines. Merge keys (`<<: *defaults`) may still be overridden.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKeyError(yaml.MarkedYAMLError):
    """A key written twice in one mapping; `path` is where the second one is."""

    def __init__(self, path: str, key: str, first: Node, again: Node):
        self.path = path
        super().__init__(
            problem=(
                f"key {key!r} is written twice in one mapping (lines {first.start_mark.line + 1} "
                f"and {again.start_mark.line + 1}); keep one"
            ),
            problem_mark=again.start_mark,
        )


class StrictSafeLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys."""

    def construct_document(self, node: Node) -> Any:
        refuse_duplicate_keys(node)
        return super().construct_document(node)


def load_strict(text: str) -> Any:
    return yaml.load(text, Loader=StrictSafeLoader)


def refuse_duplicate_keys(node: Node, path: str = "", seen: set[int] | None = None) -> None:
    seen = set() if seen is None else seen
    if id(node) in seen:  # an alias: checked where its anchor is
        return
    seen.add(id(node))
    if isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            refuse_duplicate_keys(item, f"{path}[{index}]", seen)
    elif isinstance(node, MappingNode):
        first_of: dict[tuple[str, str], Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = str(key_node.value) if isinstance(key_node, ScalarNode) else "?"
            child = f"{path}.{key}" if path else key
            identity = (key_node.tag, key)
            if isinstance(key_node, ScalarNode) and identity in first_of:
                raise DuplicateKeyError(child, key, first_of[identity], key_node)
            first_of[identity] = key_node
            refuse_duplicate_keys(value_node, child, seen)
