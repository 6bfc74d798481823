"""pydantic's findings as located lines, ``FILE:LINE:COL: what``, in watcher's words.

One place spells each kind of mistake: an unknown key (with "did you mean"), a missing
key (with an example), a value of the wrong type or form, and the checks' own words.
The rules file and ``watcher test`` files both go through here, so a mistake reads
the same in both. The YAML loader (``watcher.config.yamlloc``) remembers where every
key and value stood; pydantic's error paths are walked through it to find the place.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Sequence
from typing import Annotated, Any, Generic, NamedTuple, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from watcher.config.yamlloc import Loc, LocList, LocMap
from watcher.core.errors import Problem

M = TypeVar("M", bound=BaseModel)
KEY = "[key]"  # pydantic's step for a mapping's key, as in ('channels', 'My_Phone', '[key]')
GENERIC = {  # finishes "must be ..." when a field has no description of its own
    "string_type": "text",
    "bool_type": "true or false",
    "int_type": "a whole number",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "too_short": "not empty",
}
PATTERNS: dict[str, str] = {}  # a pattern's meaning in words; the schema registers its own


class Validated(NamedTuple, Generic[M]):
    """A document as its model, or None with one located problem per finding (and the
    finding's path, for callers that keep what is sound)."""

    value: M | None
    problems: list[Problem]
    paths: list[tuple[Any, ...]]


def validate(model: type[M], document: LocMap, path: str, rule_of: Any = None) -> Validated[M]:
    """``rule_of(steps)`` names the rule an error belongs to, for ``rule NAME:``."""
    try:
        return Validated(model.model_validate(plain(document)), [], [])
    except ValidationError as exc:
        errors = _one_per_typo(exc.errors(include_url=False))
        found = [problem(error, document, model, path, rule_of) for error in errors]
        return Validated(None, found, [tuple(error["loc"]) for error in errors])


def _one_per_typo(errors: list[Any]) -> list[Any]:
    """``url:`` for ``urls:`` is one mistake: keep "unknown key 'url'; did you mean
    'urls'?" and drop "missing 'urls:'" beside it."""
    missing = [e for e in errors if e["type"] == "missing" and e["loc"]]
    typos = set()
    for extra in (e for e in errors if e["type"] == "extra_forbidden"):
        mapping = tuple(extra["loc"][:-1])
        beside = [m["loc"][-1] for m in missing if tuple(m["loc"][:-1]) == mapping]
        typos |= {(mapping, close) for close in _close(str(extra["loc"][-1]), beside)}
    return [
        e for e in errors if e not in missing or (tuple(e["loc"][:-1]), e["loc"][-1]) not in typos
    ]


def _close(word: str, candidates: list[Any]) -> list[Any]:
    return difflib.get_close_matches(word, [str(c) for c in candidates], n=1)


def plain(node: Any) -> Any:
    """Plain dicts and lists for pydantic's strict mode; the located ones keep the places."""
    if isinstance(node, dict):
        return {key: plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [plain(value) for value in node]
    return node


def problem(
    error: Any, document: LocMap, model: type[BaseModel], path: str, rule_of: Any = None
) -> Problem:
    steps = tuple(error["loc"])
    kinds = trail(model, steps)
    where = locate(document, steps, key=error["type"] == "extra_forbidden" or KEY in steps)
    ctx = error.get("ctx") or {}
    if "key" in ctx:
        where = locate(document, (*steps, ctx["key"]))
    if "pos" in ctx:
        where = where.at(ctx["pos"])
    rule = rule_of(steps) if rule_of else None
    return Problem(path, where.line, where.column, words(error, steps, kinds), rule)


def words(error: Any, steps: tuple[Any, ...], kinds: list[Any]) -> str:
    """The message: who (``channel default:``, ``digest:``), which key, and what is wrong."""
    kind, ctx = error["type"], error.get("ctx") or {}
    owner = _owner(steps, kinds)
    # a missing or unknown key has no value of its own to name: its mapping is the context
    context = _context(steps, kinds[:-1] if kind in ("extra_forbidden", "missing") else kinds)
    if kind == "extra_forbidden":
        noun = "" if context else f"{kinds[owner].noun} "
        return f"{context}unknown {noun}key '{steps[-1]}'{_hint(steps[-1], kinds[owner])}"
    if kind == "missing":
        return f"{context}missing '{steps[-1]}:'{_example(kinds[owner], steps[-1])}"
    if KEY in steps:
        noun = kinds[len(steps) - 1].noun if _is_part(kinds[len(steps) - 1]) else "key"
        return f"{noun} name {error['input']!r}: {_pattern(ctx)}"
    target = kinds[-1]
    if _is_part(target):  # about a mapping as a whole: not one, or a check across its keys
        if kind not in GENERIC:
            return f"{context}{_what(error, None)}"
        each = f"each {target.noun} " if steps and isinstance(steps[-1], int) else context
        return f"{each}must be {target.shape}"
    field = f"{steps[owner]}: " if owner < len(steps) and isinstance(steps[owner], str) else ""
    return f"{context}{field}{_what(error, _description(steps, kinds, owner))}"


def _what(error: Any, description: str | None) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "value_error":
        return str(ctx.get("error", "is not valid"))
    if kind in ("expression", "needs"):
        return str(ctx["message"])
    if kind == "literal_error":
        return f"must be {ctx['expected']}"
    if kind == "string_pattern_mismatch":
        return f"{error['input']!r}: {_pattern(ctx)}"
    return f"must be {description or GENERIC.get(kind, 'a different value')}"


def _pattern(ctx: dict[str, Any]) -> str:
    return PATTERNS.get(str(ctx.get("pattern")), "not in the expected form")


def _owner(steps: tuple[Any, ...], kinds: list[Any]) -> int:
    """The index of the step that names a field of the innermost model on the path."""
    for index in range(len(steps) - 1, -1, -1):
        if _is_part(kinds[index]) and isinstance(steps[index], str):
            return index
    return len(steps)


def _context(steps: tuple[Any, ...], kinds: list[Any]) -> str:
    """``channel default: `` or ``digest: ``: the innermost named part the error is in.
    The top level and rules say nothing here (a rule is named by ``Problem.rule``)."""
    for index in range(len(kinds) - 1, 0, -1):
        kind = kinds[index]
        if not _is_part(kind) or kind.noun in ("top-level", "rule"):
            continue
        via = steps[index - 1]
        named = isinstance(via, str) and not _is_part(kinds[index - 1])  # a mapping's entry
        return f"{kind.noun} {via}: " if named else f"{kind.noun}: "
    return ""


def _hint(key: Any, model: Any) -> str:
    """ "did you mean", or every key, the model's own before those it inherits."""
    own = vars(model).get("__annotations__", {})
    fields = sorted(model.model_fields.items(), key=lambda item: item[0] not in own)
    known = [field.alias or name for name, field in fields]
    close = _close(str(key), known)
    return f"; did you mean '{close[0]}'?" if close else f" (keys: {', '.join(known)})"


def _example(model: Any, key: Any) -> str:
    field = _field(model, key)
    examples = field.examples if field is not None else None
    if not examples:
        return ""
    example = examples[0]
    if isinstance(example, str) and ":" in example:  # 8:00 unquoted is a number to YAML
        return f', e.g. {key}: "{example}"'
    shown = yaml.safe_dump(example, default_flow_style=True, width=1000)
    return f", e.g. {key}: {shown.strip().removesuffix('...').strip()}"


def _description(steps: tuple[Any, ...], kinds: list[Any], owner: int) -> str | None:
    if owner >= len(steps):
        return None
    field = _field(kinds[owner], steps[owner])
    return field.description if field is not None else None


def _field(model: Any, key: Any) -> Any:
    if not _is_part(model):
        return None
    return next((f for name, f in model.model_fields.items() if (f.alias or name) == key), None)


def _is_part(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, BaseModel)


# --- the types along an error's path -------------------------------------------------


def trail(model: type[BaseModel], steps: Sequence[Any]) -> list[Any]:
    """``kinds[i]`` is the type of the value that ``steps[i]`` is taken from, and the
    last entry the type of the value the error is about (a key's type after ``[key]``)."""
    kinds: list[Any] = [model]
    for index, step in enumerate(steps):
        if step == KEY:
            kinds.append(_key_type(kinds[index - 1]) if index else None)
        else:
            kinds.append(_child(kinds[index], step))
    return kinds


def _core(kind: Any) -> Any:
    """``Annotated[X, ...]`` and ``X | None`` to ``X``."""
    while get_origin(kind) is Annotated:
        kind = get_args(kind)[0]
    if get_origin(kind) in (Union, types.UnionType):
        options = [a for a in get_args(kind) if a is not type(None)]
        kind = _core(options[0]) if options else None
    return kind


def _child(kind: Any, step: Any) -> Any:
    kind = _core(kind)
    if _is_part(kind) and isinstance(step, str):
        field = _field(kind, step)
        return _core(field.annotation) if field is not None else None
    origin, args = get_origin(kind), get_args(kind)
    if origin in (list, tuple) and isinstance(step, int) and args:
        return _core(args[0])
    if origin is dict and args:
        return _core(args[1])
    return None


def _key_type(kind: Any) -> Any:
    kind = _core(kind)
    return _core(get_args(kind)[0]) if get_origin(kind) is dict else None


# --- where an error's path stands in the YAML -------------------------------------------


def locate(document: LocMap, steps: Sequence[Any], key: bool = False) -> Loc:
    """The place of ``steps`` in the located document; as deep as the YAML goes.

    A step the YAML does not have is skipped where a validator wrapped a single value
    (``notify: phone`` is ``notify: [phone]``), and ends the walk otherwise (a missing
    key is reported at the mapping that misses it). ``key`` asks for the last key's own
    place, for unknown keys.
    """
    node: Any = document
    loc = document.loc
    for index, step in enumerate(steps):
        if step == KEY:
            continue
        last = index == len(steps) - 1 or steps[index + 1] == KEY
        if isinstance(node, LocMap) and step in node:
            loc = node.key_locs[step] if key and last else node.locs[step]
            node = node[step]
        elif isinstance(node, LocList) and isinstance(step, int) and step < len(node):
            loc, node = node.locs[step], node[step]
        elif isinstance(step, int):
            continue  # a single value a validator made into a list of one
        else:
            break
    return loc
