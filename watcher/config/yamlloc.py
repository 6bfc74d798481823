"""YAML that remembers where each value stood, so errors name line and column."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from watcher.core.errors import Problem


@dataclass(frozen=True)
class Loc:
    """1-based line and column of a value, and its YAML scalar style."""

    line: int
    column: int
    style: str | None = None

    def at(self, offset: int) -> Loc:
        """Where character ``offset`` of a one-line scalar stands."""
        quoted = 1 if self.style in ("'", '"') else 0
        return Loc(self.line, self.column + quoted + offset, self.style)


class LocMap(dict):
    """A mapping whose values' locations are in ``locs`` and whose own is ``loc``."""

    loc: Loc
    locs: dict[Any, Loc]
    key_locs: dict[Any, Loc]


class LocList(list):
    loc: Loc
    locs: list[Loc]


def _loc(node: yaml.Node) -> Loc:
    mark = node.start_mark
    style = getattr(node, "style", None)
    if style in ("|", ">"):
        return Loc(mark.line + 2, mark.column + 1, style)
    return Loc(mark.line + 1, mark.column + 1, style)


class DuplicateKey(yaml.MarkedYAMLError):
    pass


MAX_ALIASES = 64  # a rules file reuses a few anchors; a "billion laughs" file uses thousands
MAX_NESTING = 64  # a rules file nests 5 levels; 400 would overflow Python's stack


class _Loader(yaml.SafeLoader):
    aliases = 0
    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Count alias uses as they are composed, so an expansion bomb stops early, and
        nesting, so a deep file is a located problem instead of a ``RecursionError``."""
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise yaml.MarkedYAMLError(
                    None, None, f"more than {MAX_ALIASES} aliases (*name)", mark
                )
        self.depth += 1
        try:
            if self.depth > MAX_NESTING:
                mark = self.peek_event().start_mark
                raise yaml.MarkedYAMLError(
                    None, None, f"nested deeper than {MAX_NESTING} levels", mark
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _mapping(loader: _Loader, node: yaml.MappingNode) -> LocMap:
    own = [(k, v) for k, v in node.value if k.tag != "tag:yaml.org,2002:merge"]
    loader.flatten_mapping(node)
    merged = node.value[: len(node.value) - len(own)]
    result = LocMap()
    result.loc, result.locs, result.key_locs = _loc(node), {}, {}
    for key_node, value_node in merged:  # from `<<: *anchor`: the first source wins
        key = _key(loader, key_node)
        if key not in result:
            _put(loader, result, key, key_node, value_node)
    seen: set[Any] = set()
    for key_node, value_node in own:  # the mapping's own keys override what was merged
        key = _key(loader, key_node)
        if key in seen:
            raise DuplicateKey(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
        _put(loader, result, key, key_node, value_node)
    return result


def _key(loader: _Loader, node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise DuplicateKey(
            None, None, "a key must be a plain name, not a list or mapping", node.start_mark
        )
    return loader.construct_object(node, deep=True)


def _put(loader: _Loader, result: LocMap, key: Any, key_node: yaml.Node, value: yaml.Node) -> None:
    result[key] = loader.construct_object(value, deep=True)
    result.locs[key] = _loc(value)
    result.key_locs[key] = _loc(key_node)


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> LocList:
    result = LocList(loader.construct_object(child, deep=True) for child in node.value)
    result.loc, result.locs = _loc(node), [_loc(child) for child in node.value]
    return result


_Loader.add_constructor("tag:yaml.org,2002:map", _mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _sequence)


def load(text: str, path: str) -> Any:
    """Parse YAML; a syntax error becomes a located ``Problem`` raised as ``YamlProblem``."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
        raise YamlProblem(Problem(path, line, column, in_words(what, line))) from None
    except yaml.reader.ReaderError as exc:  # a NUL or other control byte: say where it is
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        what = f"character #x{exc.character:04x} is not allowed in YAML"
        raise YamlProblem(Problem(path, line, column, what)) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(Problem(path, 1, 1, f"YAML syntax: {exc}")) from None


def in_words(what: str, line: int) -> str:
    """PyYAML's complaint as a person would say it, where the cause is clear."""
    if "'\\t'" in what or "\t" in what:
        return f"line {line} is indented with a tab; indent with spaces"
    if what.startswith("expected <block end>"):
        return (
            f"inconsistent indentation: line {line} is not lined up with the lines above "
            f"(YAML syntax: {what})"
        )
    return f"YAML syntax: {what}"


class YamlProblem(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem
