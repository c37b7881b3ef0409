"""Strict YAML for shipshape's own declaration files (sql/seeds/*.yaml, runbooks/*.yaml).

PyYAML's safe_load keeps the last of two equal keys without a word and forgets where a
mapping stood. ``Loader`` refuses a duplicate key and builds every mapping as a
``Mapping``, a dict that knows its line, so a validation problem can name it. It runs on
libyaml's C parser when PyYAML has one (four to seven times faster); a file that parser
refuses is read again by the Python one, so every message is worded the same either way.
``load`` reads a file with it and returns the document and the problems found reading
it; ``load_folder`` parses every YAML file of a folder (the seeds, the runbooks) and
collects what parsed and every problem found.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import yaml
from yaml.constructor import ConstructorError


class Mapping(dict):
    """A YAML mapping that remembers the line (1-based) it starts on, and each key's."""

    line: int | None = None
    key_lines: dict | None = None

    def line_of(self, key) -> int | None:
        """The line of `key` in the file (the mapping's own line when it is absent)."""
        return (self.key_lines or {}).get(key, self.line)


class Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and builds Mappings."""


def _usable_key(key) -> bool:
    try:
        hash(key)
    except TypeError:
        return False
    return True


def _construct_mapping(loader: Loader, node: yaml.MappingNode) -> Mapping:
    seen: dict = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        if not _usable_key(key):
            raise ConstructorError("while constructing a mapping", node.start_mark,
                                   "found an unhashable key", key_node.start_mark)
        if key in seen:
            raise ConstructorError("while constructing a mapping", node.start_mark,
                                   f"found duplicate key {key!r} (first on line {seen[key]})",
                                   key_node.start_mark)
        seen[key] = key_node.start_mark.line + 1
    loader.flatten_mapping(node)
    mapping = Mapping()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = key_node.start_mark.line + 1
    return mapping


Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

if getattr(yaml, "__with_libyaml__", False):
    class _FastLoader(yaml.CSafeLoader):
        """Loader's rules on libyaml's parser: the same documents, the same lines."""

    _FastLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                _construct_mapping)
else:  # PyYAML built without libyaml
    _FastLoader = Loader


def load(path: Path) -> tuple[object, list[str]]:
    """The document in path, and the problems that kept it from being read (then the
    document is None): `<path>: cannot be read (...)` or `<path>:<line>: not valid YAML: ...`.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"{path}: cannot be read ({exc})"]
    try:
        return yaml.load(text, Loader=_FastLoader), []  # a SafeLoader subclass
    except yaml.YAMLError:
        pass  # read again below: the problem as the Python parser words it
    try:
        return yaml.load(text, Loader=Loader), []  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        column = f" (column {mark.column + 1})" if mark else ""
        reason = exc.problem or exc.context or "syntax error"
        return None, [f"{where}: not valid YAML: {reason}{column}"]
    except yaml.YAMLError as exc:
        return None, [f"{path}: not valid YAML: {exc}"]


SUFFIXES = (".yaml", ".yml")
T = TypeVar("T")


def files(directory: Path) -> list[Path]:
    """The YAML files directly in directory (*.yaml, *.yml), by name; hidden ones left out."""
    return sorted(p for p in directory.iterdir()
                  if p.suffix in SUFFIXES and not p.name.startswith(".") and p.is_file())


def load_folder(directory: Path,
                parse: Callable[[Path], tuple[T | None, list[str]]]) -> tuple[list[T], list[str]]:
    """parse(path) of every YAML file in directory, in name order: the values that parsed
    (parse returns None for a file it cannot use) and all the problems of all the files."""
    parsed: list[T] = []
    problems: list[str] = []
    for path in files(directory):
        value, found = parse(path)
        problems += found
        if value is not None:
            parsed.append(value)
    return parsed, problems
