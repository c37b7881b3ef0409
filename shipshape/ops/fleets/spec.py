"""The fleet file: one SQL tree and one env profile for many databases.

    fleet: tenants                 # the fleet's name (default: the file's stem)
    env: prod                      # the env every database is deployed as: a profile,
                                   # or a stack with a Pulumi.<name>.yaml
    sql_dir: ../sql                # relative to this file (default: the project's sql/)
    settings: {lock_timeout: 2s}   # settings for every database, like --set
    parallel: 8                    # databases deployed at once (default 1; --parallel)
    max_failures: 1                # halt after this many failures (default 1)
    canary: {count: 1}             # the first wave: {count: N} (the first N databases,
                                   # default 1, 0 for none) or {names: [...], labels: {...}}
    waves:                         # optional, after the canary, in order; the rest last
      - {name: eu, labels: {region: eu}}
      - {name: next-ten, count: 10}
    databases:
      - name: tenant-a
        dsn_env: TENANT_A_URL      # an environment variable holding the DSN
        labels: {tenant: a, region: eu, tier: gold}
      - name: tenant-b
        dsn: postgresql://deploy@db-b.internal/tenant_b   # no password in the file

Read with the strict loader (a duplicate key is refused) and validated as a whole: every
problem is reported at once, each as `file:line: where: what`, and none is deployed then
(exit 5). A DSN written in the file must not hold a password: the file is committed and
shown; the password goes in the environment variable `dsn_env` names, or ~/.pgpass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from shipshape import yamlfile
from shipshape.errors import ConfigError
from shipshape.secrets import register_dsn
from shipshape.settings import SETTINGS, known_envs

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_WAVES = ("canary", "rest")
TOP_KEYS = ("fleet", "env", "sql_dir", "settings", "parallel", "max_failures", "canary",
            "waves", "databases")
MEMBER_KEYS = ("name", "dsn", "dsn_env", "labels")
SELECTOR_KEYS = ("names", "labels", "count")


@dataclass(frozen=True)
class Member:
    """One database of the fleet. Its DSN is resolved only when the fleet runs."""

    name: str
    dsn: str | None
    dsn_env: str | None
    labels: dict[str, str]
    line: int
    position: int  # its place in the file, from 0

    @property
    def source(self) -> str:
        """Where its DSN comes from, as shown (never the DSN: it may hold a password)."""
        return f"${self.dsn_env}" if self.dsn_env else f"the fleet file, line {self.line}"


@dataclass(frozen=True)
class Selector:
    """Which databases a wave takes: by name or labels (all must match, a list is any
    of), or the next `count` in file order."""

    names: tuple[str, ...] = ()
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    count: int | None = None

    @property
    def by_count(self) -> bool:
        return not self.names and not self.labels

    def matches(self, member: Member) -> bool:
        if member.name in self.names:
            return True
        return bool(self.labels) and all(member.labels.get(key) in values
                                         for key, values in self.labels.items())

    def describe(self) -> str:
        if self.by_count:
            return f"the first {self.count or 0} database(s)"
        parts = []
        if self.names:
            parts.append("names " + ", ".join(self.names))
        if self.labels:
            parts.append("labels " + ", ".join(f"{k}={'|'.join(v)}"
                                               for k, v in self.labels.items()))
        return " or ".join(parts)


@dataclass(frozen=True)
class WaveSpec:
    name: str
    selector: Selector


@dataclass(frozen=True)
class Fleet:
    name: str
    path: Path
    env: str
    sql_dir: Path | None
    settings: dict[str, str]
    parallel: int
    max_failures: int
    canary: Selector
    waves: tuple[WaveSpec, ...]
    members: tuple[Member, ...]

    def member(self, name: str) -> Member:
        return next(m for m in self.members if m.name == name)


def load(path: Path | str) -> Fleet:
    """Read and validate a fleet file; ConfigError (exit 5) listing every problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--fleet {path}: no such file. A fleet file lists the databases "
                          f"to deploy; see the README's \"Database fleets\".")
    document, problems = yamlfile.load(path)
    if problems:
        raise ConfigError(f"The fleet file {path} cannot be read; nothing was deployed.",
                          details=problems)
    parser = _Parser(path)
    fleet = parser.fleet(document)
    if parser.problems:
        raise ConfigError(f"The fleet file {path} has {len(parser.problems)} problem(s); "
                          f"nothing was deployed. Correct them and run the command again.",
                          details=parser.problems)
    return fleet


class _Parser:
    def __init__(self, path: Path):
        self.path = path
        self.found: list[tuple[int, str]] = []

    @property
    def problems(self) -> list[str]:
        """In the file's order."""
        return [text for _, text in sorted(self.found, key=lambda item: item[0])]

    def problem(self, line: int | None, where: str, message: str) -> None:
        self.found.append((line or 1, f"{self.path}:{line or 1}: {where}: {message}"))

    # --- the document ---------------------------------------------------------------------

    def fleet(self, doc) -> Fleet | None:
        if not isinstance(doc, yamlfile.Mapping):
            self.problem(getattr(doc, "line", 1), "fleet file",
                         "must be a mapping with `env` and `databases` (see the README)")
            return None
        for key in doc:
            if key not in TOP_KEYS:
                self.problem(doc.line_of(key), str(key),
                             f"unknown key; known: {', '.join(TOP_KEYS)}")
        name = self.name(doc, "fleet", "fleet", default=self.path.stem.removesuffix(".fleet"))
        env, envs = doc.get("env"), known_envs()  # a profile, or a stack with a stack file
        if env is None:
            self.problem(doc.line, "env", f"required: one of {', '.join(envs)}")
        elif env not in envs:
            self.problem(doc.line_of("env"), "env",
                         f"unknown env {env!r}; one of {', '.join(envs)}")
        sql_dir = doc.get("sql_dir")
        if sql_dir is not None and not isinstance(sql_dir, str):
            self.problem(doc.line_of("sql_dir"), "sql_dir", "must be a path (text)")
            sql_dir = None
        members = self.members(doc)
        known = {m.name for m in members}
        canary = self.canary(doc, known)
        waves = self.waves(doc, known)
        return Fleet(
            name=name, path=self.path, env=str(env),
            sql_dir=(self.path.parent / sql_dir) if sql_dir else None,
            settings=self.settings(doc),
            parallel=self.count(doc, "parallel", "parallel", default=1, least=1),
            max_failures=self.count(doc, "max_failures", "max_failures", default=1, least=1),
            canary=canary, waves=waves, members=tuple(members))

    def settings(self, doc) -> dict[str, str]:
        value = doc.get("settings")
        if value is None:
            return {}
        if not isinstance(value, yamlfile.Mapping):
            self.problem(doc.line_of("settings"), "settings",
                         "must be a mapping of setting to value, e.g. {lock_timeout: 2s}")
            return {}
        result = {}
        for key, item in value.items():
            if key not in SETTINGS:
                self.problem(value.line_of(key), f"settings.{key}",
                             f"unknown setting; known: {', '.join(SETTINGS)}")
            elif isinstance(item, (dict, list)) and key != "seed_sets":
                self.problem(value.line_of(key), f"settings.{key}", "must be a single value")
            else:
                result[key] = ",".join(map(str, item)) if isinstance(item, list) else (
                    str(item).lower() if isinstance(item, bool) else str(item))
        return result

    def members(self, doc) -> list[Member]:
        items = doc.get("databases")
        if items is None:
            self.problem(doc.line, "databases", "required: the list of databases")
            return []
        if not isinstance(items, list) or not items:
            self.problem(doc.line_of("databases"), "databases",
                         "must be a non-empty list of {name, dsn or dsn_env, labels}")
            return []
        members, seen = [], {}
        for position, item in enumerate(items):
            where = f"databases[{position}]"
            if not isinstance(item, yamlfile.Mapping):
                self.problem(doc.line_of("databases"), where,
                             "must be a mapping {name, dsn or dsn_env, labels}")
                continue
            for key in item:
                if key not in MEMBER_KEYS:
                    self.problem(item.line_of(key), f"{where}.{key}",
                                 f"unknown key; known: {', '.join(MEMBER_KEYS)}")
            name = self.name(item, "name", f"{where}.name")
            if name:
                where = f"{where} ({name})"
                if name in seen:
                    self.problem(item.line_of("name"), where,
                                 f"duplicate name (first on line {seen[name]})")
                seen.setdefault(name, item.line_of("name"))
            dsn, dsn_env = self.dsn(item, where)
            labels = self.labels(item, where)
            if name:
                members.append(Member(name, dsn, dsn_env, labels, item.line, position))
        return members

    def dsn(self, item, where: str) -> tuple[str | None, str | None]:
        dsn, dsn_env = item.get("dsn"), item.get("dsn_env")
        if (dsn is None) == (dsn_env is None):
            self.problem(item.line, where, "give exactly one of `dsn` or `dsn_env` (the name "
                                           "of an environment variable holding the DSN)")
            return None, None
        if dsn_env is not None:
            if not isinstance(dsn_env, str) or not _ENV_VAR.match(dsn_env):
                self.problem(item.line_of("dsn_env"), f"{where}.dsn_env",
                             "must be an environment variable's name, e.g. TENANT_A_URL")
                return None, None
            return None, dsn_env
        if not isinstance(dsn, str) or not dsn.strip():
            self.problem(item.line_of("dsn"), f"{where}.dsn", "must be a DSN (text)")
            return None, None
        register_dsn(dsn)  # whatever happens next, it is never shown
        wrong = _dsn_problem(dsn)
        if wrong:
            self.problem(item.line_of("dsn"), f"{where}.dsn", wrong)
            return None, None
        return dsn, None

    def labels(self, item, where: str) -> dict[str, str]:
        value = item.get("labels")
        if value is None:
            return {}
        if not isinstance(value, yamlfile.Mapping) or not all(
                isinstance(k, str) and _scalar(v) for k, v in value.items()):
            self.problem(item.line_of("labels"), f"{where}.labels",
                         "must be a mapping of name to a single value, e.g. {tier: gold}")
            return {}
        return {k: _text(v) for k, v in value.items()}

    # --- waves ------------------------------------------------------------------------------

    def canary(self, doc, known: set[str]) -> Selector:
        if "canary" not in doc:
            return Selector(count=1)
        return self.selector(doc["canary"], "canary", doc.line_of("canary"), known) or Selector(
            count=1)

    def waves(self, doc, known: set[str]) -> tuple[WaveSpec, ...]:
        items = doc.get("waves")
        if items is None:
            return ()
        if not isinstance(items, list):
            self.problem(doc.line_of("waves"), "waves",
                         "must be a list of {name, names, labels or count}")
            return ()
        waves, seen = [], set()
        for position, item in enumerate(items):
            where = f"waves[{position}]"
            line = getattr(item, "line", doc.line_of("waves"))
            if not isinstance(item, yamlfile.Mapping):
                self.problem(line, where, "must be a mapping {name, names, labels or count}")
                continue
            name = self.name(item, "name", f"{where}.name")
            if name in RESERVED_WAVES:
                self.problem(item.line_of("name"), f"{where}.name",
                             f"{name!r} is the name of a built-in wave; choose another")
            elif name in seen:
                self.problem(item.line_of("name"), f"{where}.name", "duplicate wave name")
            seen.add(name)
            body = yamlfile.Mapping({k: v for k, v in item.items() if k != "name"})
            body.line, body.key_lines = item.line, item.key_lines
            selector = self.selector(body, f"{where} ({name})", line, known)
            if name and selector:
                waves.append(WaveSpec(name, selector))
        return tuple(waves)

    def selector(self, value, where: str, line: int | None, known: set[str]) -> Selector | None:
        if not isinstance(value, yamlfile.Mapping):
            self.problem(line, where, "must be a mapping: {count: N} or {names: [...], "
                                      "labels: {...}}")
            return None
        for key in value:
            if key not in SELECTOR_KEYS:
                self.problem(value.line_of(key), f"{where}.{key}",
                             f"unknown key; known: {', '.join(SELECTOR_KEYS)}")
        names = value.get("names", [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            self.problem(value.line_of("names"), f"{where}.names", "must be a list of names")
            names = []
        for name in names:
            if name not in known:
                self.problem(value.line_of("names"), f"{where}.names",
                             f"no database is named {name!r}")
        labels = {}
        raw = value.get("labels")
        if raw is None:
            pass
        elif not isinstance(raw, yamlfile.Mapping):
            self.problem(value.line_of("labels"), f"{where}.labels",
                         "must be a mapping of name to a value or a list of values")
        else:
            for key, wanted in raw.items():
                values = wanted if isinstance(wanted, list) else [wanted]
                if not isinstance(key, str) or not all(_scalar(v) for v in values):
                    self.problem(raw.line_of(key), f"{where}.labels.{key}",
                                 "must be a value or a list of values")
                    continue
                labels[key] = tuple(_text(v) for v in values)
        count = None
        if "count" in value:
            count = self.count(value, "count", f"{where}.count", default=0, least=0)
            if names or labels:
                self.problem(value.line_of("count"), where,
                             "give `count` or `names`/`labels`, not both")
        elif not names and not labels:
            self.problem(line, where, "select databases: `count`, `names` or `labels`")
            return None
        return Selector(tuple(names), labels, count)

    # --- scalars ----------------------------------------------------------------------------

    def name(self, doc, key: str, where: str, default: str | None = None) -> str | None:
        value = doc.get(key, default)
        if value is None:
            self.problem(doc.line, where, "required")
            return None
        if not isinstance(value, str) or not NAME.match(value):
            self.problem(doc.line_of(key), where,
                         f"{value!r} is not a name: letters, digits, '.', '_', '-', at most 63")
            return None
        return value

    def count(self, doc, key: str, where: str, *, default: int, least: int) -> int:
        value = doc.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            self.problem(doc.line_of(key), where, f"must be a whole number >= {least}")
            return default
        return value


def _scalar(value) -> bool:
    return isinstance(value, (str, int, float, bool))


def _text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _dsn_problem(dsn: str) -> str | None:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        password = conninfo_to_dict(dsn).get("password")
    except psycopg.Error:
        return ("is not a DSN libpq can read (not shown: it may hold a password); write it "
                "as postgresql://user@host:port/dbname")
    if password:
        return ("holds a password, and a fleet file is committed and shown (the DSN is not "
                "repeated here). Put the DSN in an environment variable and name it with "
                "`dsn_env`, or keep the password in ~/.pgpass")
    return None


def resolve_dsn(fleet: Fleet, member: Member, environ) -> str:
    """The member's DSN; ConfigError (exit 5) naming the variable when it is not set."""
    if member.dsn is not None:
        return member.dsn
    value = environ.get(member.dsn_env or "")
    if not value:
        raise ConfigError(
            f"{fleet.path}:{member.line}: database {member.name}: the environment variable "
            f"{member.dsn_env} (its dsn_env) is not set{' or is empty' if value == '' else ''}; "
            f"nothing was deployed. Export it with the database's DSN and run the command "
            f"again.")
    register_dsn(value)
    return value
