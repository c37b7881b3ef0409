"""2. Verify of a 500-table schema, cold (shadow database built) and warm (cached).

50 migrations x 10 tables (primary key, unique column, foreign key, index each),
deployed once with the engine. Then verify.verify(conn, target, tree) with
SHIPSHAPE_STATE_DIR pointing at an empty temp dir: the first call builds the shadow
database and caches its snapshot; the next ones read the cache. For context, a bare
catalog.snapshot of the live database (the part of a warm verify that reads the target).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench.common import Context, Row, median, seconds, timed
from bench.migrations import engine_apply
from bench.trees import schema_tree

MIGRATIONS, TABLES_PER = 50, 10
WARM_RUNS = 3
TARGET_WARM = 1.0  # seconds


def run(ctx: Context) -> list[Row]:
    from shipshape import db
    from shipshape.engine import catalog, verify

    sql_dir = schema_tree(ctx.workdir / "schema500", MIGRATIONS, TABLES_PER)
    dsn = ctx.databases.create()
    saved = os.environ.get("SHIPSHAPE_STATE_DIR")
    try:
        target = ctx.target(dsn)
        deploy_seconds, _ = timed(engine_apply, sql_dir, target)
        with tempfile.TemporaryDirectory(prefix="shipshape-bench-state-") as state:
            os.environ["SHIPSHAPE_STATE_DIR"] = state
            with db.connect(target, purpose="bench verify") as conn:
                cold, cold_findings = timed(verify.verify, conn, target, sql_dir)
                cached = sorted((Path(state) / "cache").glob("shadow-*.json"))
                warm_times, warm_findings = [], []
                for _ in range(WARM_RUNS):
                    elapsed, found = timed(verify.verify, conn, target, sql_dir)
                    warm_times.append(elapsed)
                    warm_findings.append(len(found))
                snap_times = []
                for _ in range(WARM_RUNS):
                    elapsed, snap = timed(catalog.snapshot, conn)
                    snap_times.append(elapsed)
    finally:
        if saved is None:
            os.environ.pop("SHIPSHAPE_STATE_DIR", None)
        else:
            os.environ["SHIPSHAPE_STATE_DIR"] = saved
        ctx.databases.drop(dsn)

    warm, snap_median = median(warm_times), median(snap_times)
    findings = {len(cold_findings), *warm_findings}
    sanity = (f"{len(snap['tables'])} tables, {len(snap['indexes'])} indexes, "
              f"{len(snap['constraints'])} constraints; findings cold/warm: "
              f"{len(cold_findings)}/{'/'.join(map(str, warm_findings))}"
              + ("" if findings == {0} else " (expected 0!)")
              + ("" if len(cached) == 1 else f"; cache files: {len(cached)} (expected 1!)"))
    return [
        Row(
            benchmark=f"2. warm verify, {MIGRATIONS * TABLES_PER}-table schema",
            measured=f"warm {seconds(warm)}",
            baseline=f"bare catalog snapshot {seconds(snap_median)}",
            ratio=f"{warm / snap_median:.1f}x",
            target=f"< {TARGET_WARM:g} s (absolute)",
            within="yes" if warm < TARGET_WARM else "no",
            notes=(f"median of {WARM_RUNS} warm runs "
                   f"({', '.join(seconds(t) for t in warm_times)}), "
                   f"shadow snapshot from a fresh SHIPSHAPE_STATE_DIR cache; {sanity}"),
        ),
        Row(
            benchmark="2. cold verify (shadow database built), same schema",
            measured=f"cold {seconds(cold)}",
            baseline=f"deploy (migrate) {seconds(deploy_seconds)}",
            ratio=f"{cold / deploy_seconds:.1f}x",
            target="informational",
            notes=("one run: builds the shadow database on the same server from the same "
                   "rendered migrations, snapshots it, caches it, then diffs"),
        ),
    ]
