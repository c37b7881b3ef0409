"""4. Peak RSS: the engine applying the 300 migrations vs psql applying migrate.sql.

Each runs as a child of bench/rss.py, which reports resource.getrusage(RUSAGE_CHILDREN)
for that one child. The engine child is `python -m bench.migrations engine-apply` (render,
connect, lock, migrate, as timed in benchmark 1); the psql child applies the script
rendered beforehand. Client memory only: the server backends are not counted.
Informational: no target.
"""

from __future__ import annotations

import sys

from bench.common import BENCH_DIR, ROOT, Context, Row, run_checked
from bench.migrations import psql_command, render_script, tree


def peak_rss_kib(command: list[str], **kwargs) -> int:
    wrapper = [sys.executable, "-I", "-S", str(BENCH_DIR / "rss.py")]
    out = run_checked(wrapper + command, **kwargs).stdout.split()
    peak, code = int(out[-2]), int(out[-1])
    if code != 0:
        raise RuntimeError(f"{' '.join(command[:3])} ... exited {code}")
    return peak


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def run(ctx: Context) -> list[Row]:
    sql_dir = tree(ctx)
    floor = peak_rss_kib(["true"])
    engine_dsn = ctx.databases.create()
    try:
        engine = peak_rss_kib([sys.executable, "-m", "bench.migrations", "engine-apply",
                               str(sql_dir), engine_dsn], cwd=ROOT)
    finally:
        ctx.databases.drop(engine_dsn)
    script = render_script(sql_dir, ctx.env(), ctx.workdir / "memory-migrate.sql")
    psql_dsn = ctx.databases.create()
    try:
        psql = peak_rss_kib(psql_command(script, psql_dsn))
    finally:
        ctx.databases.drop(psql_dsn)
    return [Row(
        benchmark="4. peak RSS applying the 300 migrations, engine vs psql",
        measured=f"engine {mib(engine)}",
        baseline=f"psql {mib(psql)}",
        ratio=f"{engine / psql:.1f}x",
        target="informational",
        within="—",
        notes=(f"ru_maxrss of each child process (RUSAGE_CHILDREN of a bare wrapper), client "
               f"side only; the wrapper's floor (`true`) is {mib(floor)}; the engine figure "
               f"includes the interpreter, psycopg, Jinja and rendering; the psql script "
               f"is {script.stat().st_size / 1024:.0f} KiB"),
    )]
