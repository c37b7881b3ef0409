"""Baseline: adopt a database whose objects were created by hand, as being at a version.

Only after proving, with a shadow database, that its schema equals what migrations
0001..version produce; then their history rows are recorded. Unlike verify, baseline
writes (the history), so it lives apart from it.
"""

from __future__ import annotations

import psycopg

from shipshape import db
from shipshape.engine import boundary, catalog, history, migrations
from shipshape.engine.shadow import shadow_snapshot
from shipshape.errors import ConfigError, Refused
from shipshape.progress import Progress
from shipshape.targets import Target


def baseline(conn: psycopg.Connection, target: Target, loaded: list[migrations.Migration],
             version: int, *, progress: Progress | None = None,
             tolerate=None, dry_run: bool = False,
             declared: boundary.Boundary | None = None) -> list[migrations.Migration]:
    """Adopt a database whose objects were created by hand, as being at `version`.

    Only after proving that its schema equals what migrations 1..version produce;
    otherwise refuse (exit 3) and list the differences. Call with the migration lock held.
    `tolerate(difference)` may excuse a difference that is not the schema's (another
    tool's own history table, for `db.baseline --from`). dry_run: the same proof, and
    nothing written (no history table, no row). `declared`: the objects the env
    declares unmanaged (engine.boundary), which the proof leaves out.
    """
    progress = progress or Progress()
    if version not in {m.version for m in loaded}:
        raise ConfigError(f"--version {version}: no migration has version {version:04d}.")
    _refuse_a_history(conn)
    adopted = [m for m in loaded if m.version <= version]
    _prove(conn, target, adopted, version, progress, tolerate, declared)
    if dry_run:  # proven, and nothing recorded: the caller shows what would be
        return adopted
    history.ensure_history(conn)
    with conn.transaction():
        for migration in adopted:
            history.record(conn, migration, applied_by=f"baseline by {db.operator()}")
    return adopted


def _refuse_a_history(conn: psycopg.Connection) -> None:
    recorded = history.read_history(conn)
    if recorded:
        raise Refused(
            f"This database already has a migration history (up to "
            f"{migrations.current_version(recorded) or 0:04d}); baseline only adopts databases "
            f"without one. Use `invoke db.status` and `invoke db.migrate` instead."
        )


def _prove(conn: psycopg.Connection, target: Target, adopted: list[migrations.Migration],
           version: int, progress: Progress, tolerate=None,
           declared: boundary.Boundary | None = None) -> None:
    """Refuse (exit 3) unless the schema is what `adopted` produce in a shadow database."""
    with progress.step(f"compare with migrations 0001..{version:04d} in a shadow database") as step:
        expected = shadow_snapshot(target, adopted, progress)
        actual = db.read_only(conn, lambda: catalog.snapshot(conn))
        drift, _ = boundary.split(expected, actual, declared or boundary.Boundary())
        differences = [d for d in drift if tolerate is None or not tolerate(d)]
        step.note(f"{len(differences)} difference(s)")
    if differences:
        raise Refused(
            f"Refusing to baseline at {version:04d}: the schema is not what migrations "
            f"0001..{version:04d} produce ({len(differences)} difference(s)). Fix these first "
            f"(or pick the version the schema really matches):",
            details=[d.describe() for d in differences],
        )
