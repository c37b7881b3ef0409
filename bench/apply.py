"""1. Applying N generated migrations: `invoke db.migrate` as a process, against psql and peers.

For each N (default 100, 300, 1000), bench.trees.fk_migrations(N) (each migration: a
table, a foreign key to the previous one, an index) is written as a shipshape tree and, from
the same SQL, as each peer's files. Every contender runs as a child process, exactly as a
user types it, into a fresh database of its own (created and dropped outside the clock):

- `invoke db.migrate --env local --dsn DSN --sql-dir TREE` (the venv's invoke);
- `psql -X -v ON_ERROR_STOP=1 -q -f migrate.sql`: the script `invoke render` wrote for
  this tree beforehand (outside the clock), which applies and records shipshape.history
  exactly as db.migrate does: the baseline every ratio is against;
- `psql -X -v ON_ERROR_STOP=1 -q -f plain.sql`: the bare SQL concatenated, one session,
  no history, no transaction: no tool at all (each statement commits on its own, so it is
  not a floor: at small N it is slower than migrate.sql's one commit per migration);
- alembic (a transaction per migration, and all in one), yoyo, dbmate: bench/peers.py.

Rounds are interleaved (the order reversed by turns: ABC, CBA, ...) so that machine noise
hits every contender, and db.migrate and its psql baseline run back to back in each round;
an untimed warm-up round first (page cache, .pyc files). After every run an untimed check
counts the tables and the tool's own history rows.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench import peers
from bench.common import (
    ROOT,
    Context,
    Row,
    Sample,
    Section,
    interleaved,
    paired,
    ratio,
    run_process,
    seconds,
    venv_bin,
)
from bench.trees import fk_migrations, write_shipshape_tree

# The targets for `invoke db.migrate` against psql running migrate.sql.
TARGETS = {100: 1.5, 300: 1.15, 1000: 1.15}

SHIPSHAPE = "shipshape `invoke db.migrate`"
PSQL = "psql -f migrate.sql (rendered by `invoke render`, history rows included)"
PLAIN = "psql -f plain.sql (the bare SQL, one session, no history)"
ALEMBIC = "alembic upgrade head (transaction per migration)"
ALEMBIC_ONE = "alembic upgrade head (one transaction)"
YOYO = "yoyo apply"
DBMATE = "dbmate up"


def invoke_cmd(*args: str) -> list[str]:
    return [str(venv_bin("invoke")), *args]


def psql_cmd(script: Path, dsn: str) -> list[str]:
    return ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-q", "-f", str(script), dsn]


@dataclass
class Workload:
    """N migrations, written once for every contender."""

    n: int
    root: Path
    tree: Path = field(init=False)
    rendered: Path = field(init=False)
    plain: Path = field(init=False)
    alembic_ini: Path | None = None
    yoyo_dir: Path | None = None
    dbmate_dir: Path | None = None
    tools: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)  # contender -> reason

    @classmethod
    def build(cls, ctx: Context, n: int) -> Workload:
        cache = ctx.cache.setdefault("workloads", {})
        if n in cache:
            return cache[n]
        w = cls(n, ctx.workdir / f"n{n}")
        migrations = fk_migrations(n)
        w.tree = write_shipshape_tree(w.root / "sql", migrations)
        w.plain = peers.write_plain(w.root / "plain.sql", migrations)
        out = w.root / "rendered"
        run_process(invoke_cmd("render", "--env", "local", "--sql-dir", str(w.tree),
                               "--dsn", ctx.admin_dsn, "--out", str(out)),
                    cwd=ROOT, env=ctx.child_env, tty=False)
        w.rendered = out / "migrate.sql"
        w.tools = {"alembic": peers.alembic(), "yoyo": peers.yoyo(), "dbmate": peers.dbmate()}
        if w.tools["alembic"].available:
            w.alembic_ini = peers.write_alembic(w.root / "alembic", migrations)
        else:
            w.skipped[ALEMBIC] = w.skipped[ALEMBIC_ONE] = w.tools["alembic"].reason
        if w.tools["yoyo"].available:
            w.yoyo_dir = peers.write_yoyo(w.root / "yoyo", migrations)
        else:
            w.skipped[YOYO] = w.tools["yoyo"].reason
        if w.tools["dbmate"].available:
            w.dbmate_dir = peers.write_dbmate(w.root / "dbmate", migrations)
        else:
            w.skipped[DBMATE] = w.tools["dbmate"].reason
        cache[n] = w
        return w

    def apply_command(self, name: str, dsn: str) -> list[str]:
        if name == SHIPSHAPE:
            return invoke_cmd("db.migrate", "--env", "local", "--dsn", dsn,
                              "--sql-dir", str(self.tree))
        if name == PSQL:
            return psql_cmd(self.rendered, dsn)
        if name == PLAIN:
            return psql_cmd(self.plain, dsn)
        if name in (ALEMBIC, ALEMBIC_ONE):
            return peers.alembic_upgrade(self.tools["alembic"], self.alembic_ini, dsn,
                                         per_migration=name == ALEMBIC)
        if name == YOYO:
            return peers.yoyo_apply(self.tools["yoyo"], self.yoyo_dir, dsn)
        if name == DBMATE:
            return peers.dbmate_cmd(self.tools["dbmate"].path, self.dbmate_dir, dsn, "up")
        raise KeyError(name)

    def contenders(self) -> list[str]:
        every = [SHIPSHAPE, PSQL, PLAIN, ALEMBIC, ALEMBIC_ONE, YOYO, DBMATE]
        return [c for c in every if c not in self.skipped]

    def check(self, name: str, dsn: str) -> None:
        """Untimed: the run built N tables and its tool recorded N migrations."""
        import psycopg

        history = {
            SHIPSHAPE: "SELECT count(*) FROM shipshape.history WHERE success",
            PSQL: "SELECT count(*) FROM shipshape.history WHERE success",
            ALEMBIC: "SELECT version_num::int FROM alembic_version",
            ALEMBIC_ONE: "SELECT version_num::int FROM alembic_version",
            YOYO: "SELECT count(*) FROM _yoyo_migration",
            DBMATE: "SELECT count(*) FROM schema_migrations",
        }.get(name)
        with psycopg.connect(dsn) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename LIKE 'fk\\_t%'").fetchone()[0]
            recorded = conn.execute(history).fetchone()[0] if history else self.n
        if (tables, recorded) != (self.n, self.n):
            raise RuntimeError(f"{name}: {tables} tables and {recorded} history rows, "
                               f"expected {self.n} of each")


def measure(ctx: Context, n: int) -> tuple[Workload, dict[str, Sample], dict[str, str]]:
    """Every contender at N; returns the samples and, per contender, its last database
    (kept for the no-op benchmark; the caller drops them)."""
    w = Workload.build(ctx, n)
    kept: dict[str, str] = {}

    def run_one(name: str) -> float:
        dsn = ctx.databases.create()
        try:
            elapsed, _ = run_process(w.apply_command(name, dsn), cwd=ROOT, env=ctx.child_env,
                                     tty=ctx.options.tty)
            w.check(name, dsn)
        except BaseException:
            ctx.databases.drop(dsn)
            raise
        previous = kept.pop(name, None)
        kept[name] = dsn
        if previous:
            ctx.databases.drop(previous)
        return elapsed

    print(f"bench: apply N={n}: {len(w.contenders())} contenders x {ctx.options.reps}",
          file=sys.stderr, flush=True)
    samples = interleaved(w.contenders(), ctx.options.reps, ctx.options.warmup, run_one)
    return w, samples, kept


def section(ctx: Context, n: int, w: Workload, samples: dict[str, Sample]) -> Section:
    base = samples.get(PSQL)
    base_ok = base is not None and not base.error and base.times
    target = TARGETS.get(n)
    rows, failed = [], False
    for name in [SHIPSHAPE, PSQL, PLAIN, ALEMBIC, ALEMBIC_ONE, YOYO, DBMATE]:
        if name in w.skipped:
            rows.append(Row(name, median=f"skipped: {w.skipped[name]}"))
            continue
        s = samples[name]
        row = s.row(name, base)
        failed = failed or bool(s.error)
        if name == SHIPSHAPE and row.ratio != "—" and paired(s, base):
            row.ratio += f"; per round {paired(s, base)}"
        if name == SHIPSHAPE and target is not None:
            row.target = f"≤ {target:g}x psql"
            if not s.error and base_ok:
                row.met = "yes" if s.median / base.median <= target else "no"
        rows.append(row)
    notes = [
        "db.migrate's ratio is that of the medians; then, per round, db.migrate ÷ psql "
        "round by round (the two run back to back in each round): median (min–max).",
        f"{ctx.options.reps} timed run(s) of each contender"
        + (" after an untimed warm-up round" if ctx.options.warmup else "")
        + ", interleaved (the order reversed by turns: ABC…, …CBA), each into a fresh database "
          "created and dropped outside the clock; median, fastest, slowest.",
        "The clock covers the whole process, as typed: interpreter start-up, imports, "
        "rendering, connecting, the SQL, the output"
        + (" (drawn on a pseudo-terminal, as on a user's screen)." if ctx.options.tty
           else " (into a pipe)."),
        "Ratios are against psql running migrate.sql (same run); `invoke render` wrote it "
        "beforehand, outside the clock.",
        f"Every run was checked afterwards: {n} tables and {n} rows in the tool's history.",
    ]
    return Section(f"Apply {n} migrations (table + foreign key + index each)", rows, notes,
                   failed=failed)


def side_by_side(results: dict[int, tuple[Workload, dict[str, Sample]]]) -> Section:
    """Every contender at every N in one table: median, and its ratio to psql migrate.sql."""
    sizes = sorted(results)
    lines = ["| contender | " + " | ".join(f"N = {n}" for n in sizes) + " |",
             "|---|" + "---|" * len(sizes)]
    for name in [SHIPSHAPE, PSQL, PLAIN, ALEMBIC, ALEMBIC_ONE, YOYO, DBMATE]:
        cells = []
        for n in sizes:
            w, samples = results[n]
            s, base = samples.get(name), samples.get(PSQL)
            if name in w.skipped:
                cells.append("skipped")
            elif s is None or s.error or not s.times:
                cells.append("failed")
            elif base is None or base.error or not base.times:
                cells.append(seconds(s.median))
            else:
                cells.append(f"{seconds(s.median)} ({ratio(s.median, base.median)})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return Section("Apply: every contender side by side", [], [
        "Medians; in parentheses the ratio to psql running migrate.sql in the same run. "
        "The sections below give each N's fastest and slowest runs."],
        markdown="\n".join(lines))


def run(ctx: Context) -> list[Section]:
    sections, results = [], {}
    largest = max(ctx.options.sizes)
    for n in ctx.options.sizes:
        w, samples, kept = measure(ctx, n)
        results[n] = (w, samples)
        sections.append(section(ctx, n, w, samples))
        if n == largest:  # the no-op benchmark starts from these
            ctx.cache["applied"] = (n, kept)
        else:
            for dsn in kept.values():
                ctx.databases.drop(dsn)
    return [side_by_side(results), *sections]
