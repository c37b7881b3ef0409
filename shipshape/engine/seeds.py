"""Declarative seed data -> idempotent upserts, and a read-only check of them.

A seed file is sql/seeds/<name>.yaml::

    table: ai_models
    key: [modelKey]          # columns of a unique constraint (the ON CONFLICT target)
    set: reference           # Environment.seed_sets decides which sets an env gets
    envs: [local, dev]       # optional; default: every env
    rows:
      - {modelKey: a, creditCost: 8, capabilities: {width: 512}}   # dict/list -> jsonb
    overrides:               # optional; per env, rows matched by key, values replaced
      prod:
        - {modelKey: a, enabled: false}

``load`` validates every file (whichever env it is for) and returns the seeds that
apply to one env, overrides merged. ``apply`` upserts them all in one transaction;
``script`` writes the same upserts as a psql script; ``check`` compares the declared
rows with the database without writing. Seeds insert and update; they never delete.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from shipshape import db, yamlfile
from shipshape.errors import ConfigError, SQLFailed
from shipshape.settings import KNOWN_ENVS, Environment
from shipshape.text import listing

SEEDS_DIR = "seeds"
SUFFIXES = (".yaml", ".yml")
FIELDS = ("table", "key", "set", "envs", "rows", "overrides")
REQUIRED = ("table", "key", "set", "rows")
# PostgreSQL truncates longer identifiers silently; a seed must not rely on that.
MAX_IDENTIFIER = 63
# Parameters per check query stay far below PostgreSQL's 65535.
_CHECK_PARAMS = 20000
_SHOWN = 5


# --- the data --------------------------------------------------------------------------

@dataclass(frozen=True)
class Seed:
    """One seed file, for one env: its rows after that env's overrides."""

    path: Path
    table: str
    key: tuple[str, ...]
    set: str
    rows: tuple[dict, ...]

    @property
    def name(self) -> str:
        return self.path.name

    def key_of(self, row: dict) -> tuple:
        return tuple(row[column] for column in self.key)

    def describe_key(self, key: tuple) -> str:
        return describe_key(key)


@dataclass
class SeedResult:
    """What apply did to one seed file."""

    path: Path
    table: str
    inserted: int
    updated: int
    unchanged: int

    @property
    def total(self) -> int:
        return self.inserted + self.updated + self.unchanged

    @property
    def changed(self) -> bool:
        return bool(self.inserted or self.updated)

    def summary(self) -> str:
        return (f"{self.table}: {self.inserted} inserted, {self.updated} updated, "
                f"{self.unchanged} unchanged ({self.path.name})")


@dataclass
class SeedCheck:
    """How the database compares with one seed file's declared rows."""

    seed: Seed
    total: int
    ok: int = 0
    missing: list[tuple] = field(default_factory=list)
    # (key values, column, expected, actual)
    differing: list[tuple[tuple, str, object, object]] = field(default_factory=list)
    error: str | None = None

    @property
    def healthy(self) -> bool:
        return self.error is None and not self.missing and not self.differing

    def summary(self) -> str:
        table = self.seed.table
        if self.error:
            return f"{table}: {self.error}"
        if self.healthy:
            return f"{table}: all {self.total} declared rows present and equal"
        if not self.differing and len(self.missing) == self.total:
            return (f"{table}: 0 of {self.total} declared rows present "
                    f"(missing {listing([describe_key(k) for k in self.missing], _SHOWN)})")
        parts = [f"{table}: {self.ok} of {self.total} rows equal"]
        if self.missing:
            parts.append(f"missing {listing([describe_key(k) for k in self.missing], _SHOWN)}")
        by_row: dict[tuple, list[str]] = {}
        for key, column, expected, actual in self.differing:
            by_row.setdefault(key, []).append(
                f"{column} is {show_value(actual)}, expected {show_value(expected)}")
        shown = list(by_row.items())
        parts += [f"{describe_key(key)}: {', '.join(diffs)}" for key, diffs in shown[:_SHOWN]]
        if len(shown) > _SHOWN:
            parts.append(f"and {len(shown) - _SHOWN} more differing rows")
        return "; ".join(parts)


def describe_key(key: tuple) -> str:
    """A row key for messages: the value itself, or (a, b) for a composite key."""
    if len(key) == 1:
        return str(key[0])
    return "(" + ", ".join(str(value) for value in key) + ")"


def show_value(value) -> str:
    """A value as an operator reads it: true, NULL, 'text', {"json": 1}."""
    if value is None:
        text = "NULL"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = repr(value)
    elif isinstance(value, dict | list):
        text = json.dumps(value, sort_keys=True, default=str)
    else:
        text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- loading ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _File:
    """A validated seed file, before an env is chosen."""

    path: Path
    table: str
    key: tuple[str, ...]
    set: str
    envs: tuple[str, ...] | None
    rows: tuple[dict, ...]
    overrides: dict  # env name -> tuple of override dicts

    def applies_to(self, env: Environment) -> bool:
        return self.set in env.seed_sets and (self.envs is None or env.name in self.envs)

    def rows_for(self, env_name: str) -> tuple[dict, ...]:
        changes = {tuple(o[c] for c in self.key): o for o in self.overrides.get(env_name, ())}
        return tuple({**row, **changes.get(tuple(row[c] for c in self.key), {})}
                     for row in self.rows)


def load(sql_dir: Path | str, env: Environment) -> list[Seed]:
    """The seeds that apply to env, files sorted by name, overrides merged.

    Every file is validated, also those for other envs, so a broken prod override
    fails a local run too. A missing seeds/ directory means no seeds.
    """
    directory = Path(sql_dir) / SEEDS_DIR
    if not directory.is_dir():
        return []
    paths = sorted(p for p in directory.iterdir()
                   if p.suffix in SUFFIXES and not p.name.startswith(".") and p.is_file())
    files, problems = [], []
    for path in paths:
        parsed, found = _parse(path)
        problems += found
        if parsed is not None:
            files.append(parsed)
    chosen = [f for f in files if f.applies_to(env)]
    problems += _overlaps(chosen, env)
    _raise_problems(problems)
    return [Seed(f.path, f.table, f.key, f.set, f.rows_for(env.name)) for f in chosen]


def _raise_problems(problems: list[str]) -> None:
    if not problems:
        return
    fix = "Fix the seed file, then preview the result with `invoke db.seed --dry-run`."
    if len(problems) == 1:
        raise ConfigError(f"{problems[0]}. {fix}")
    raise ConfigError(f"The seed files have {len(problems)} problems. {fix}", details=problems)


def _parse(path: Path) -> tuple[_File | None, list[str]]:
    """A seed file and the problems found in it (all of them, not only the first)."""
    document, unreadable = yamlfile.load(path)
    if unreadable:
        return None, unreadable

    problems: list[str] = []

    def problem(where: str, message: str, line: int | None = None) -> None:
        problems.append(f"{path}: {where}: {message}" + (f" (line {line})" if line else ""))

    if not isinstance(document, dict):
        return None, [f"{path}: expected a mapping with the fields "
                      f"{', '.join(REQUIRED)}, got {_kind(document)}"]
    for name in document:
        if name not in FIELDS:
            problem(str(name), f"unknown field; the fields are {', '.join(FIELDS)}")
    for name in REQUIRED:
        if name not in document:
            problem(name, "missing required field")

    table = document.get("table")
    if "table" in document and not _valid_table(table):
        problem("table", f"must be a table name such as ai_models or app.ai_models, "
                         f"got {show_value(table)}")
        table = None

    key = document.get("key")
    if "key" in document:
        if (not isinstance(key, list) or not key
                or not all(isinstance(c, str) and _valid_identifier(c) for c in key)):
            problem("key", f"must be a non-empty list of column names, e.g. [modelKey], "
                           f"got {show_value(key)}")
            key = None
        elif len(set(key)) != len(key):
            problem("key", "lists a column twice")
            key = None

    seed_set = document.get("set")
    if "set" in document and (not isinstance(seed_set, str) or not seed_set.strip()):
        problem("set", f"must be a string naming a seed set (e.g. reference), "
                       f"got {show_value(seed_set)}")

    envs = document.get("envs")
    if "envs" in document:
        if not isinstance(envs, list) or not envs:
            problem("envs", f"must be a non-empty list of envs ({', '.join(KNOWN_ENVS)}), "
                            f"got {show_value(envs)}")
            envs = None
        else:
            for i, name in enumerate(envs):
                if name not in KNOWN_ENVS:
                    problem(f"envs[{i}]", f"unknown env {show_value(name)}; known envs: "
                                          f"{', '.join(KNOWN_ENVS)}")

    clean_rows = _parse_rows(document, key, problem)
    clean_overrides = _parse_overrides(document, key, envs, clean_rows, problem)

    if problems:
        return None, problems
    return _File(
        path=path, table=table, key=tuple(key), set=seed_set,
        envs=tuple(envs) if envs is not None else None,
        rows=tuple(clean_rows), overrides=clean_overrides,
    ), []


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
        result[env_name] = tuple(kept)
    return result


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


def _overlaps(files: list[_File], env: Environment) -> list[str]:
    """Two files of one env that declare the same row would undo each other forever."""
    owner: dict[tuple, Path] = {}
    problems = []
    for f in files:
        for i, row in enumerate(f.rows):
            ident = (f.table, f.key, tuple(row[c] for c in f.key))
            if ident in owner:
                problems.append(
                    f"{f.path}: rows[{i}]: key {describe_key(ident[2])} of table {f.table} is "
                    f"also declared by {owner[ident]} (both apply to env {env.name})")
            else:
                owner[ident] = f.path
    return problems


# --- the upserts -----------------------------------------------------------------------

def _runs(seed: Seed) -> list[tuple[tuple[str, ...], list[dict]]]:
    """Consecutive rows with the same columns, in file order: one statement shape each."""
    runs: list[tuple[tuple[str, ...], list[dict]]] = []
    for row in seed.rows:
        if runs and set(runs[-1][0]) == set(row):
            runs[-1][1].append(row)
        else:
            runs.append((tuple(row), [row]))
    return runs


def _upsert(seed: Seed, columns: tuple[str, ...], values: sql.Composable, *,
            returning: bool) -> sql.Composed:
    """The upsert of one row shape; values are placeholders (apply) or literals (script).

    apply adds RETURNING to count inserted and updated rows; the psql script does not.
    """
    others = [c for c in columns if c not in seed.key]
    parts = {
        "table": db.identifier(seed.table),
        "columns": sql.SQL(", ").join(map(sql.Identifier, columns)),
        "values": values,
        "key": sql.SQL(", ").join(map(sql.Identifier, seed.key)),
        "returning": sql.SQL(db.statement("seed_returning") if returning else ""),
    }
    if not others:
        return sql.SQL(db.statement("seed_insert_only")).format(**parts)
    return sql.SQL(db.statement("seed_upsert")).format(
        **parts,
        assignments=sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in others),
        current=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in others),
        incoming=sql.SQL(", ").join(
            sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in others),
    )


def adapt(value):
    """A seed value as a query parameter: dicts and lists are jsonb."""
    return Jsonb(value) if isinstance(value, dict | list) else value


def apply(conn: psycopg.Connection, env: Environment, seeds: list[Seed]) -> list[SeedResult]:
    """Upsert every seed in ONE transaction, with env's timeouts; nothing is deleted.

    A SQL error rolls everything back and raises SQLFailed (exit 6) naming the file and
    the row. A lock_timeout is retried like migrations, then raises Busy (exit 4).
    """
    if not seeds:
        return []

    def work():
        with conn.transaction():
            db.set_local_timeouts(conn, env)
            return [_apply_seed(conn, env, seed) for seed in seeds]

    return db.retry_on_lock_timeout(
        conn, env, work, what="Seeding",
        then=f"run `invoke db.seed --env {env.name}` again; nothing was seeded.")


def _apply_seed(conn: psycopg.Connection, env: Environment, seed: Seed) -> SeedResult:
    inserted = updated = 0
    for columns, rows in _runs(seed):
        statement = _upsert(seed, columns, sql.SQL(", ").join(sql.Placeholder() * len(columns)),
                            returning=True)
        params = [[adapt(row[c]) for c in columns] for row in rows]
        try:
            with conn.transaction(), conn.cursor() as cur:  # a savepoint
                cur.executemany(statement, params, returning=True)
                while True:
                    for (was_inserted,) in cur.fetchall():
                        inserted += bool(was_inserted)
                        updated += not was_inserted
                    if not cur.nextset():
                        break
        except psycopg.errors.LockNotAvailable:
            raise
        except psycopg.Error as exc:
            failing = None
            if not isinstance(exc, psycopg.errors.QueryCanceled):
                failing = _failing_row(conn, statement, params)
            row = rows[failing] if failing is not None else None
            raise _sql_failed(env, seed, row, exc) from None
    return SeedResult(seed.path, seed.table, inserted, updated,
                      len(seed.rows) - inserted - updated)


def _failing_row(conn: psycopg.Connection, statement, params: list) -> int | None:
    """Replay a failed batch row by row in a savepoint that is always rolled back."""
    index = None
    try:
        with conn.transaction(force_rollback=True):
            for index, values in enumerate(params):
                conn.execute(statement, values)
    except psycopg.Error:
        return index
    return None


def _sql_failed(env: Environment, seed: Seed, row: dict | None, exc: psycopg.Error) -> SQLFailed:
    reason = db.server_message(exc, env)
    if isinstance(exc, psycopg.errors.InvalidColumnReference) and "ON CONFLICT" in reason:
        reason += (f"; key [{', '.join(seed.key)}] must be exactly the columns of a unique "
                   f"index or constraint of {seed.table}")
    elif isinstance(exc, psycopg.errors.UndefinedFunction) and "operator" in reason:
        reason += ("; seeds compare a row's values with =, so a seeded column needs a type "
                   "with equality (store JSON in jsonb, not json)")
    where = f"row {describe_key(seed.key_of(row))}" if row is not None else "a row"
    return SQLFailed(
        f"Seed {seed.path} failed at {where} of table {seed.table}: {reason}. "
        f"The seed transaction was rolled back: no row of any seed file was written. Fix the "
        f"seed file or the schema (`invoke db.migrate --env {env.name}`), then run "
        f"`invoke db.seed --env {env.name}` again."
    )


# --- the script ------------------------------------------------------------------------

def script(seeds: list[Seed], *, env: Environment | None = None) -> str:
    """The same upserts as apply, values as quoted literals, for psql (render, --dry-run).

    One transaction; with env, its timeouts are set as apply sets them.
    """
    total = sum(len(seed.rows) for seed in seeds)
    lines = [
        f"-- shipshape seeds: {_count(len(seeds), 'file')}, {_count(total, 'row')}"
        + (f", env {env.name}" if env else "") + ".",
        "-- Idempotent upserts in one transaction; rows are inserted or updated, never deleted.",
        "\\set ON_ERROR_STOP on",
        "BEGIN;",
    ]
    if env is not None:
        for setting in ("lock_timeout", "statement_timeout"):
            value = sql.Literal(getattr(env, setting)).as_string(None)
            lines.append(f"SET LOCAL {setting} = {value};")
    for seed in seeds:
        lines += ["", _comment(f"{seed.path}: table {seed.table}, set {seed.set}, "
                               f"{_count(len(seed.rows), 'row')}, key ({', '.join(seed.key)})")]
        for columns, rows in _runs(seed):
            for row in rows:
                values = sql.SQL(", ").join(sql.Literal(adapt(row[c])) for c in columns)
                statement = _upsert(seed, columns, values, returning=False)
                lines.append(statement.as_string(None).rstrip() + ";")
    lines += ["", "COMMIT;", ""]
    return "\n".join(lines)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _comment(text: str) -> str:
    return "-- " + re.sub(r"[\x00-\x1f\x7f]", " ", text)


# --- the check -------------------------------------------------------------------------

def check(conn: psycopg.Connection, seeds: list[Seed]) -> list[SeedCheck]:
    """Compare every declared row with the database; read-only, never raises for SQL.

    Each seed is read in its own savepoint (or transaction), so a missing table or
    column becomes SeedCheck.error and the connection stays usable.
    """
    return [_check_seed(conn, seed) for seed in seeds]


def _check_seed(conn: psycopg.Connection, seed: Seed) -> SeedCheck:
    result = SeedCheck(seed=seed, total=len(seed.rows))
    try:
        with conn.transaction():
            columns = _columns(conn, seed.table)
            if columns is None:
                result.error = (f"table {seed.table} does not exist (declared in {seed.path}); "
                                f"run the migrations that create it (`invoke db.migrate`)")
                return result
            declared = list(dict.fromkeys(c for row in seed.rows for c in row))
            unknown = [c for c in declared if c not in columns]
            if unknown:
                result.error = (f"table {seed.table} has no column "
                                f"{', '.join(map(repr, unknown))} (declared in {seed.path})")
                return result
            for names, rows in _runs(seed):
                per_query = max(1, _CHECK_PARAMS // (len(names) + 1))
                for start in range(0, len(rows), per_query):
                    _check_rows(conn, seed, names, rows[start:start + per_query],
                                columns, result)
    except psycopg.Error as exc:
        result.ok, result.missing, result.differing = 0, [], []
        result.error = f"cannot compare with table {seed.table}: {db.server_message(exc)}"
    return result


def _columns(conn: psycopg.Connection, table: str) -> dict[str, tuple[str, bool]] | None:
    """name -> (type, is json) for the table's columns; None when it does not exist."""
    rows = conn.execute(db.query("seed_columns"),
                        {"table": db.identifier(table).as_string(conn)}).fetchall()
    if not rows or not rows[0][0]:
        return None
    return {name: (type_, is_json) for _, name, type_, is_json in rows if name is not None}


def _check_rows(conn, seed: Seed, names: tuple[str, ...], rows: list[dict],
                columns: dict[str, tuple[str, bool]], result: SeedCheck) -> None:
    others = [c for c in names if c not in seed.key]
    alias = {c: sql.Identifier(f"c{i}") for i, c in enumerate(names)}

    def compared(prefix: str, column: str) -> sql.Composable:
        ref = (sql.SQL("x.{}").format(sql.Identifier(column)) if prefix == "x"
               else sql.SQL("d.{}").format(alias[column]))
        # json has no equality operator: compare as jsonb, as the rest of shipshape does
        return sql.SQL("{}::jsonb").format(ref) if columns[column][1] else ref

    select = [sql.SQL("d.n"), sql.SQL("x.{} IS NOT NULL").format(sql.Identifier(seed.key[0]))]
    for column in others:
        select.append(sql.SQL("{} IS NOT DISTINCT FROM {}").format(
            compared("x", column), compared("d", column)))
        select.append(sql.SQL("x.{}").format(sql.Identifier(column)))
    row_values = sql.SQL("({})").format(sql.SQL(", ").join(
        [sql.SQL("CAST(%s AS integer)")]
        + [sql.SQL("CAST(%s AS {})").format(sql.SQL(columns[c][0])) for c in names]))
    query = sql.SQL(db.statement("seed_check")).format(
        select=sql.SQL(", ").join(select),
        values=sql.SQL(", ").join([row_values] * len(rows)),
        aliases=sql.SQL(", ").join([sql.Identifier("n"), *alias.values()]),
        table=db.identifier(seed.table),
        match=sql.SQL(" AND ").join(
            sql.SQL("x.{} = d.{}").format(sql.Identifier(c), alias[c]) for c in seed.key),
    )
    params = [value for n, row in enumerate(rows) for value in [n] + [adapt(row[c]) for c in names]]
    for record in conn.execute(query, params).fetchall():
        row = rows[record[0]]
        key = seed.key_of(row)
        if not record[1]:
            result.missing.append(key)
            continue
        equal = True
        for i, column in enumerate(others):
            if not record[2 + 2 * i]:
                equal = False
                result.differing.append((key, column, row[column], record[3 + 2 * i]))
        result.ok += equal
