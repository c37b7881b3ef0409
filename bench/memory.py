"""6. Peak client memory applying N migrations: `invoke db.migrate` vs psql (migrate.sql).

Each runs as a child of bench/rss.py, which reports resource.getrusage(RUSAGE_CHILDREN)
for that one child, into a fresh database. The CLI child is the venv's `invoke db.migrate`
(interpreter, imports, rendering, the work); the psql child applies the migrate.sql that
`invoke render` wrote. Client memory only: the server backends are not counted.
Informational: no target. N is 300 (the smallest size of a --quick run).
"""

from __future__ import annotations

import sys

from bench.apply import PSQL, SHIPSHAPE, Workload
from bench.common import BENCH_DIR, ROOT, Context, Row, Section, run_checked

N = 300


def peak_rss_kib(command: list[str], **kwargs) -> int:
    wrapper = [sys.executable, "-I", "-S", str(BENCH_DIR / "rss.py")]
    out = run_checked(wrapper + command, **kwargs).stdout.split()
    peak, code = int(out[-2]), int(out[-1])
    if code != 0:
        raise RuntimeError(f"{' '.join(command[:3])} ... exited {code}")
    return peak


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def run(ctx: Context) -> list[Section]:
    n = min(ctx.options.sizes) if ctx.options.quick else N
    w = Workload.build(ctx, n)
    floor = peak_rss_kib(["true"])
    peaks = {}
    for name in (SHIPSHAPE, PSQL):
        dsn = ctx.databases.create()
        try:
            peaks[name] = peak_rss_kib(w.apply_command(name, dsn), cwd=ROOT, env=ctx.child_env)
            w.check(name, dsn)
        finally:
            ctx.databases.drop(dsn)
    rows = [Row(SHIPSHAPE, mib(peaks[SHIPSHAPE]), ratio=f"{peaks[SHIPSHAPE] / peaks[PSQL]:.1f}x"),
            Row(PSQL, mib(peaks[PSQL]), ratio="1.0x")]
    notes = [f"ru_maxrss of each child (one run each; RUSAGE_CHILDREN of a bare wrapper whose "
             f"own floor, `true`, is {mib(floor)}); client side only; migrate.sql is "
             f"{w.rendered.stat().st_size / 1024:.0f} KiB."]
    return [Section(f"Peak client memory, apply {n} migrations", rows, notes,
                    measured="peak RSS")]
