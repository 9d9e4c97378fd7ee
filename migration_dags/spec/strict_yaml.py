"""YAML read strictly: what a migration file does not need is refused before it is built.

- A key written twice in one mapping: PyYAML's SafeLoader keeps the last one, so `table: users`
  ... `table: orders` in one operation would quietly migrate orders. Merge keys (`<<: *defaults`)
  may still be overridden.
- Any explicit tag (`!!python/object`, `!!str`, `!custom`): a migration file is plain data.
- Nesting deeper than MAX_DEPTH: PyYAML builds documents recursively (a RecursionError otherwise).
- Anchors and aliases that make the document more than MAX_ALIAS_NODES nodes bigger than it is
  written ("billion laughs": a few lines expanding to gigabytes).
- Files over MAX_FILE_BYTES (loader.py, before reading them).

Each error names the line and, where there is one, the field's path.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_MERGE_TAG = "tag:yaml.org,2002:merge"
MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_ALIAS_NODES = 10_000


class StrictYamlError(yaml.MarkedYAMLError):
    """Something a migration file may not hold; `path` is the field, or "" when it has none."""

    def __init__(self, message: str, mark: Any, path: str = ""):
        self.path = path
        super().__init__(problem=message, problem_mark=mark)


class DuplicateKeyError(StrictYamlError):
    """A key written twice in one mapping; `path` is where the second one is."""

    def __init__(self, path: str, key: str, first: Node, again: Node):
        super().__init__(
            f"key {key!r} is written twice in one mapping (lines {first.start_mark.line + 1} "
            f"and {again.start_mark.line + 1}); keep one",
            again.start_mark,
            path,
        )


class StrictSafeLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, tags, deep nesting and large alias expansions."""

    def __init__(self, stream: Any):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        # checked on the event stream, before PyYAML recurses into the node
        event = self.peek_event()
        tag = getattr(event, "tag", None)
        if tag is not None and not isinstance(event, yaml.AliasEvent):
            raise StrictYamlError(
                f"tags are not allowed in a migration file (found {tag!r}); write plain values",
                event.start_mark,
            )
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise StrictYamlError(
                    f"nests deeper than {MAX_DEPTH} levels; a migration file needs far fewer",
                    event.start_mark,
                )
            try:
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1
        return super().compose_node(parent, index)

    def construct_document(self, node: Node) -> Any:
        refuse_alias_expansion(node)
        refuse_duplicate_keys(node)
        return super().construct_document(node)


def load_strict(text: str) -> Any:
    return yaml.load(text, Loader=StrictSafeLoader)


def refuse_alias_expansion(root: Node) -> None:
    """Refuse a document whose aliases add more than MAX_ALIAS_NODES nodes to it. Sizes are
    counted once per node (memoised, without recursion), so a billion laughs costs nothing."""
    expanded: dict[int, int] = {}
    started: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in expanded:
            continue
        children = _children(node)
        if not children_done:
            if id(node) in started:  # met again below itself: an alias inside its own anchor
                raise StrictYamlError("an alias refers to a value that contains it", node.start_mark)
            started.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in expanded)
            continue
        expanded[id(node)] = 1 + sum(expanded[id(child)] for child in children)
        if expanded[id(node)] - len(started) > MAX_ALIAS_NODES:
            raise StrictYamlError(
                f"its anchors and aliases expand to more than {MAX_ALIAS_NODES} extra values; "
                "write the values out instead",
                node.start_mark,
            )


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


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
