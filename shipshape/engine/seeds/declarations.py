"""Seed files: reading and validating sql/seeds/*.yaml, and choosing an env's seeds.

Every file is validated, whichever env it is for, and every problem is reported at once,
each with its file, field and line.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from shipshape import yamlfile
from shipshape.engine.seeds.model import Seed, describe_key, show_value
from shipshape.errors import ConfigError
from shipshape.settings import KNOWN_ENVS, Environment

SEEDS_DIR = "seeds"
FIELDS = ("table", "key", "set", "envs", "initial", "rows", "overrides")
REQUIRED = ("table", "key", "set", "rows")
# PostgreSQL truncates longer identifiers silently; a seed must not rely on that.
MAX_IDENTIFIER = 63


@dataclass(frozen=True)
class Declaration:
    """A validated seed file, before an env is chosen: its rows as declared, the envs it
    is for (None: every env) and, per env name, the rows it overrides. The names are
    profiles: a stack such as eu-prod gets what the file says for prod."""

    seed: Seed
    envs: tuple[str, ...] | None
    overrides: dict  # env name -> tuple of override dicts
    override_lines: dict = field(default_factory=dict)  # env name -> their Seed.lines

    def applies_to(self, env: Environment) -> bool:
        return self.seed.set in env.seed_sets and (self.envs is None or env.profile in self.envs)

    def for_env(self, env_name: str) -> Seed:
        """The seed with env_name's overrides merged into its rows."""
        seed = self.seed
        entries = self.overrides.get(env_name, ())
        changes = {seed.key_of(o): o for o in entries}
        changed_lines = {seed.key_of(o): lines for o, lines
                         in zip(entries, self.override_lines.get(env_name, ()), strict=False)}
        lines = tuple({**lines, **{c: changed_lines.get(seed.key_of(row), {}).get(c)
                                   for c in changes.get(seed.key_of(row), {})
                                   if c not in seed.key}}
                      for row, lines in zip(seed.rows, seed.lines, strict=False))
        return replace(seed, rows=tuple({**row, **changes.get(seed.key_of(row), {})}
                                        for row in seed.rows), lines=lines)


def load(sql_dir: Path | str, env: Environment) -> list[Seed]:
    """The seeds that apply to env, files sorted by name, overrides merged.

    Every file is validated, also those for other envs, so a broken prod override
    fails a local run too. A missing seeds/ directory means no seeds.
    """
    directory = Path(sql_dir) / SEEDS_DIR
    if not directory.is_dir():
        return []
    declared, problems = yamlfile.load_folder(directory, parse)
    chosen = [d for d in declared if d.applies_to(env)]
    problems += _overlaps(chosen, env)
    _raise_problems(problems)
    return [d.for_env(env.profile) for d in chosen]


def _raise_problems(problems: list[str]) -> None:
    if not problems:
        return
    fix = "Fix the seed file, then preview the result with `invoke db.seed --dry-run`."
    if len(problems) == 1:
        raise ConfigError(f"{problems[0]}. {fix}")
    raise ConfigError(f"The seed files have {len(problems)} problems. {fix}", details=problems)


def parse(path: Path) -> tuple[Declaration | None, list[str]]:
    """A seed file and the problems found in it (all of them, not only the first)."""
    document, unreadable = yamlfile.load(path)
    if unreadable:
        return None, unreadable
    if not isinstance(document, dict):
        return None, [(f"{path}: expected a mapping with the fields "
                       f"{', '.join(REQUIRED)}, got {_kind(document)}")]

    problems: list[str] = []

    def problem(where: str, message: str, line: int | None = None) -> None:
        problems.append(f"{path}: {where}: {message}" + (f" (line {line})" if line else ""))

    _check_fields(document, problem)
    table = _table(document, problem)
    key = _key(document, problem)
    seed_set = _seed_set(document, problem)
    envs = _envs(document, problem)
    clean_rows = _parse_rows(document, key, problem)
    initial = _initial(document, key, clean_rows, problem)
    clean_overrides = _parse_overrides(document, key, envs, clean_rows, problem)
    if problems:
        return None, problems
    return Declaration(
        seed=Seed(path=path, table=table, key=tuple(key), set=seed_set, rows=tuple(clean_rows),
                  lines=_lines(document.get("rows")), initial=tuple(initial)),
        envs=tuple(envs) if envs is not None else None,
        overrides=clean_overrides,
        override_lines={env: _lines(entries) for env, entries
                        in (document.get("overrides") or {}).items()
                        if env in clean_overrides},
    ), []


def _lines(entries) -> tuple[dict, ...]:
    """Where each mapping of a (valid) rows or overrides list and each of its keys stands."""
    return tuple({None: getattr(entry, "line", None),
                  **{column: entry.line_of(column) for column in entry}}
                 if isinstance(entry, yamlfile.Mapping) else {} for entry in entries or ())


def _check_fields(document: dict, problem) -> None:
    for name in document:
        if name not in FIELDS:
            problem(str(name), f"unknown field; the fields are {', '.join(FIELDS)}")
    for name in REQUIRED:
        if name not in document:
            problem(name, "missing required field")


def _table(document: dict, problem):
    table = document.get("table")
    if "table" in document and not _valid_table(table):
        problem("table", f"must be a table name such as ai_models or app.ai_models, "
                         f"got {show_value(table)}")
        return None
    return table


def _key(document: dict, problem):
    key = document.get("key")
    if "key" not in document:
        return key
    if (not isinstance(key, list) or not key
            or not all(isinstance(c, str) and _valid_identifier(c) for c in key)):
        problem("key", f"must be a non-empty list of column names, e.g. [modelKey], "
                       f"got {show_value(key)}")
        return None
    if len(set(key)) != len(key):
        problem("key", "lists a column twice")
        return None
    return key


def _seed_set(document: dict, problem):
    seed_set = document.get("set")
    if "set" in document and (not isinstance(seed_set, str) or not seed_set.strip()):
        problem("set", f"must be a string naming a seed set (e.g. reference), "
                       f"got {show_value(seed_set)}")
    return seed_set


def _initial(document: dict, key: list | None, rows: list[dict], problem) -> list[str]:
    """The initial-data columns: each a declared, non-key column, listed once."""
    initial = document.get("initial")
    if "initial" not in document:
        return []
    if (not isinstance(initial, list) or not initial
            or not all(isinstance(c, str) and _valid_identifier(c) for c in initial)):
        problem("initial", f"must be a non-empty list of column names whose values users "
                           f"change, e.g. [creditBalance], got {show_value(initial)}")
        return []
    if len(set(initial)) != len(initial):
        problem("initial", "lists a column twice")
    for column in dict.fromkeys(initial):
        if column in (key or ()):
            problem("initial", f"{column!r} is a key column: a row is found by its key, "
                               f"so the key cannot be initial data")
        elif rows and not any(column in row for row in rows):
            problem("initial", f"{column!r} is in no row: list only columns the rows declare")
    return list(dict.fromkeys(initial))


def _envs(document: dict, problem):
    envs = document.get("envs")
    if "envs" not in document:
        return envs
    if not isinstance(envs, list) or not envs:
        problem("envs", f"must be a non-empty list of envs ({', '.join(KNOWN_ENVS)}), "
                        f"got {show_value(envs)}")
        return None
    for i, name in enumerate(envs):
        if name not in KNOWN_ENVS:
            problem(f"envs[{i}]", f"unknown env {show_value(name)}; known envs: "
                                  f"{', '.join(KNOWN_ENVS)}")
    return envs


def _parse_rows(document: dict, key: list | None, problem) -> list[dict]:
    """The rows, as plain dicts; problems are reported through problem()."""
    if "rows" not in document:
        return []
    rows = document["rows"]
    if not isinstance(rows, list) or not rows:
        problem("rows", f"must be a non-empty list of mappings (column: value), "
                        f"got {show_value(rows)}")
        return []
    clean_rows: list[dict] = []
    seen: dict[tuple, int] = {}
    for i, row in enumerate(rows):
        line = getattr(row, "line", None)
        where = f"rows[{i}]"
        if not isinstance(row, dict) or not row:
            problem(where, f"must be a mapping of column to value, got {_kind(row)}", line)
            continue
        if not _check_row(where, row, key, line, problem):
            continue
        clean = _plain(row)
        clean_rows.append(clean)
        if key:
            row_key = tuple(clean[c] for c in key)
            if row_key in seen:
                problem(where, f"duplicate key {describe_key(row_key)}, also "
                               f"rows[{seen[row_key]}]", line)
            seen.setdefault(row_key, i)
    return clean_rows


def _parse_overrides(document: dict, key: list | None, envs, clean_rows: list[dict],
                     problem) -> dict[str, tuple[dict, ...]]:
    """Per env, the overrides; each must name a declared row and change something."""
    if "overrides" not in document:
        return {}
    overrides = document["overrides"]
    if not isinstance(overrides, dict):
        problem("overrides", f"must be a mapping of env name to a list of rows, "
                             f"got {_kind(overrides)}")
        return {}
    declared = {tuple(r[c] for c in key) for r in clean_rows} if key else set()
    result: dict[str, tuple[dict, ...]] = {}
    for env_name, entries in overrides.items():
        base = f"overrides.{env_name}"
        if env_name not in KNOWN_ENVS:
            problem(base, f"unknown env; known envs: {', '.join(KNOWN_ENVS)}")
            continue
        if isinstance(envs, list) and env_name not in envs:
            problem(base, f"the file does not apply to {env_name} "
                          f"(envs: {', '.join(map(str, envs))})")
        if not isinstance(entries, list) or not entries:
            problem(base, "must be a non-empty list of mappings that name a row by "
                          "its key columns and give the values to replace")
            continue
        result[env_name] = _parse_override_entries(base, entries, key, declared, problem)
    return result


def _parse_override_entries(base: str, entries: list, key: list | None, declared: set,
                            problem) -> tuple[dict, ...]:
    """One env's overrides: each names a declared row (once) and replaces a value."""
    kept, matched = [], {}
    for i, entry in enumerate(entries):
        where = f"{base}[{i}]"
        line = getattr(entry, "line", None)
        if not isinstance(entry, dict):
            problem(where, f"must be a mapping, got {_kind(entry)}", line)
            continue
        if not _check_row(where, entry, key, line, problem):
            continue
        clean = _plain(entry)
        if key:
            entry_key = tuple(clean[c] for c in key)
            if len(clean) == len(key):
                problem(where, "replaces no value: list the columns to change next to "
                               "the key columns", line)
                continue
            if entry_key not in declared:
                problem(where, f"matches no row: no row has key "
                               f"{describe_key(entry_key)}", line)
                continue
            if entry_key in matched:
                problem(where, f"overrides {describe_key(entry_key)} again, also "
                               f"{base}[{matched[entry_key]}]", line)
                continue
            matched[entry_key] = i
        kept.append(clean)
    return tuple(kept)


def _check_row(where: str, row: dict, key, line, problem) -> bool:
    """Column names, key columns and value types of one row (or override)."""
    good = True
    for column, value in row.items():
        if not isinstance(column, str) or not _valid_identifier(column):
            problem(where, f"{show_value(column)} is not a column name", line)
            good = False
            continue
        reason = _value_problem(value)
        if reason:
            problem(f"{where}.{column}", reason, line)
            good = False
    for column in key or ():
        if column not in row:
            problem(where, f"missing key column {column!r}", line)
            good = False
        elif isinstance(row.get(column), dict | list) or row.get(column) is None:
            problem(f"{where}.{column}", f"a key column needs a plain value, got "
                                         f"{show_value(row.get(column))}", line)
            good = False
    return good


_SCALARS = (str, int, float, bool, Decimal, date, datetime, bytes)


def _value_problem(value) -> str | None:
    if value is None or isinstance(value, _SCALARS):
        return None
    if isinstance(value, dict | list):
        return _json_problem(value)
    return f"unsupported value of type {type(value).__name__}"


def _json_problem(value) -> str | None:
    """dict/list values become jsonb: everything inside must be JSON."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return f"jsonb object keys must be strings, got {show_value(k)}"
            found = _json_problem(v)
            if found:
                return found
    elif isinstance(value, list):
        for v in value:
            found = _json_problem(v)
            if found:
                return found
    elif not (value is None or isinstance(value, str | int | float | bool)):
        return (f"a jsonb value cannot hold {type(value).__name__} {value!s}; "
                f"quote it as a string")
    return None


def _plain(value):
    """Plain dicts and lists (the loader's line-numbered mappings removed)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _valid_identifier(name: str) -> bool:
    return bool(name) and len(name.encode()) <= MAX_IDENTIFIER and "\x00" not in name


def _valid_table(table) -> bool:
    return isinstance(table, str) and all(_valid_identifier(p) for p in table.split(".", 1))


def _kind(value) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {show_value(value)}"


def _overlaps(declared: list[Declaration], env: Environment) -> list[str]:
    """Two files of one env that declare the same row would undo each other forever."""
    owner: dict[tuple, Path] = {}
    problems = []
    for d in declared:
        seed = d.seed
        for i, row in enumerate(seed.rows):
            ident = (seed.table, seed.key, seed.key_of(row))
            if ident in owner:
                problems.append(
                    f"{seed.path}: rows[{i}]: key {describe_key(ident[2])} of table "
                    f"{seed.table} is also declared by {owner[ident]} (both apply to env "
                    f"{env.name})")
            else:
                owner[ident] = seed.path
    return problems
