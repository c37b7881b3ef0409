"""The reviewable SQL an environment would run: psql scripts for migrate, rollback,
seed and verify, and the plan that --dry-run prints. Rendering happens here, applying
happens in migrations/seeds: the scripts record history with engine.history's own
statements, exactly as the engine does.
"""

from __future__ import annotations

from pathlib import Path

from shipshape import db
from shipshape.engine import history, migrations, seeds, tree
from shipshape.engine.render import Renderer
from shipshape.settings import Environment


def migrate_script(renderer: Renderer, todo: list[migrations.Migration], *,
                   bootstrap: bool = True) -> str:
    return renderer.render("migrate_script.sql.j2", migrations=todo,
                           bootstrap=history.schema_sql() if bootstrap else "",
                           record=history.record_script,
                           largest_table_rows=db.query("largest_table_rows").strip())


def rollback_script(renderer: Renderer, applied: list[migrations.Migration]) -> str:
    """Rollbacks of `applied`, newest first."""
    ordered = sorted(applied, key=lambda m: m.version, reverse=True)
    return renderer.render("rollback_script.sql.j2", migrations=ordered,
                           unrecord=history.delete_script)


def seed_script(declared: list[seeds.Seed], env: Environment | None = None) -> str:
    return seeds.script(declared, env=env)


def verify_script(renderer: Renderer, expected: dict, loaded: list[migrations.Migration],
                  declared: list[seeds.Seed]) -> str:
    """A psql-only script printing a ✓/✗ row per expected object; exits non-zero on ✗."""
    return renderer.render("verify_script.sql.j2", expected=expected, migrations=loaded,
                           seeds=[_seed_rows(seed) for seed in declared])


def _seed_rows(seed: seeds.Seed) -> dict:
    """A seed as verify.sql checks it: initial columns are the users', never compared."""
    rows = [{c: v for c, v in row.items() if c not in seed.initial} for row in seed.rows]
    return {"table": seed.table, "key": list(seed.key), "rows": rows, "file": seed.path.name}


def write_bundle(out_dir: Path, env: Environment, sql_dir: Path, expected: dict, *,
                 code: tree.Tree | None = None) -> dict[str, Path]:
    """render: migrate.sql, rollback.sql, seed.sql and verify.sql for env into out_dir.
    `code` is sql_dir already loaded for env (tree.load), when the caller has it."""
    code = code or tree.load(sql_dir, env)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "migrate.sql": migrate_script(code.renderer, code.migrations),
        "rollback.sql": rollback_script(code.renderer, code.migrations),
        "seed.sql": seed_script(code.seeds, env),
        "verify.sql": verify_script(code.renderer, expected, code.migrations, code.seeds),
    }
    written = {}
    for name, text in files.items():
        path = out_dir / name
        path.write_text(text)
        written[name] = path
    return written
