"""An SQL tree rendered for one environment: its migrations, seed declarations and data
checks, loaded once and handed to every gate that needs them (deploy, verify, the dry
run, render, the Pulumi gate), so a deploy reads and renders each file once.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from shipshape.engine import migrations, seeds
from shipshape.engine.render import Renderer
from shipshape.settings import Environment


@dataclass(frozen=True)
class Check:
    """A data invariant from sql/checks: a SELECT returning the violating rows."""

    name: str
    path: Path
    sql: str
    description: str
    severity: str
    fix: str


def load_checks(sql_dir: Path, renderer: Renderer) -> list[Check]:
    """The rendered sql/checks/*.sql.j2, with their header lines read."""
    directory = Path(sql_dir) / "checks"
    if not directory.is_dir():
        return []
    checks = []
    for path in sorted(directory.glob("*.sql.j2")):
        text = renderer.render_source(path, path.read_text())
        header = dict(re.findall(r"^--\s*(description|severity|fix):\s*(.+?)\s*$", text, re.M))
        checks.append(Check(
            name=path.name.removesuffix(".sql.j2"), path=path, sql=text,
            description=header.get("description", path.name),
            severity=header.get("severity", "error"),
            fix=header.get("fix", "inspect the rows and fix the data"),
        ))
    return checks


@dataclass(frozen=True)
class Tree:
    sql_dir: Path
    env: Environment
    renderer: Renderer
    migrations: list[migrations.Migration]
    seeds: list[seeds.Seed]
    checks: list[Check]


def load(sql_dir: Path | str, env: Environment) -> Tree:
    """Render everything in sql_dir for env; template and declaration errors raise (exit 5)."""
    sql_dir = Path(sql_dir)
    renderer = Renderer(sql_dir, env)
    return Tree(sql_dir, env, renderer, migrations.load(sql_dir, env, renderer),
                seeds.load(sql_dir, env), load_checks(sql_dir, renderer))


def checksums(code: Tree) -> dict[str, dict[str, str]]:
    """sha256 of every rendered migration, seed file (its rows for the env) and data check.

    Independent of where the tree is on disk: the same tree checked out elsewhere (a CI
    runner, a laptop) has the same checksums. What a deploy's outcome depends on, so the
    Pulumi gate re-runs when they change and a fleet run is named by them."""
    return {
        "migrations": {m.name: m.checksum for m in code.migrations},
        "seeds": {s.name: migrations.sha256(json.dumps(
            {"table": s.table, "key": list(s.key), "set": s.set, "rows": list(s.rows)},
            sort_keys=True, default=str)) for s in code.seeds},
        "checks": {c.name: migrations.sha256(c.sql) for c in code.checks},
    }


def checksum(code: Tree) -> str:
    """One sha256 over checksums(code): the tree as rendered for its env."""
    return migrations.sha256(json.dumps(checksums(code), sort_keys=True))
