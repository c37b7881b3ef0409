"""One report per fleet run: reports/<UTC time>-fleet-<fleet>-<env>[-shard-i-of-N].md and
.json, written when the run ends (complete, halted or interrupted; never for a dry run).

Redacted like every output, and built from the run's record, which holds no DSN: each
database is shown by name and by its target as `Target.describe()` redacts it.
"""

from __future__ import annotations

import json
from pathlib import Path

from shipshape.paths import reports_root
from shipshape.secrets import redact
from shipshape.text import one_line, to_jsonable

MARK = {"deployed": "✓", "already": "✓", "failed": "✗", "not-run": "-", "pending": "·",
        "running": "…"}


def write(run, reports_dir: Path | str | None = None) -> None:
    """Write the run's two files and set run.report_md / run.report_json."""
    directory = reports_root(reports_dir)
    directory.mkdir(parents=True, exist_ok=True)
    shard = f"-shard-{run.shard.replace('/', '-of-')}" if run.shard else ""
    stem = f"{run.started_at:%Y%m%dT%H%M%SZ}-fleet-{run.fleet}-{run.env}{shard}"
    base, n = directory / stem, 1
    while base.with_suffix(".json").exists():
        n += 1
        base = directory / f"{stem}-{n}"
    run.report_md, run.report_json = base.with_suffix(".md"), base.with_suffix(".json")
    run.report_json.write_text(
        redact(json.dumps(to_jsonable(run.as_dict()), indent=2, default=str)) + "\n")
    run.report_md.write_text(redact(markdown(run)))


def markdown(run) -> str:
    lines = [f"# Fleet run: {run.fleet} ({run.env})", "",
             "| | |", "|---|---|",
             f"| run | `{run.run_id}` (attempt {run.attempt}) |",
             f"| fleet file | `{run.fleet_file}` |",
             f"| SQL tree | `{run.sql_dir}` (sha256 `{run.tree_checksum[:16]}`) |",
             f"| phase | `deploy --phase {run.phase}` on each database |",
             f"| shard | {run.shard or 'all'} |",
             f"| parallel / max_failures | {run.parallel} / {run.max_failures} |",
             f"| operator | {run.operator} |",
             f"| started | {run.started_at:%Y-%m-%d %H:%M:%S} UTC |",
             f"| finished | {run.finished_at:%Y-%m-%d %H:%M:%S} UTC |"
             if run.finished_at else "| finished | - |",
             f"| outcome | **{run.outcome}** (exit {run.exit_code}) |",
             f"| databases | {run.summary()} |", ""]
    if run.halted:
        lines += [f"Stopped: {run.halted}.", ""]
    lines += ["## Waves", ""]
    for name, names in run.waves:
        states = [run.outcomes[n].status for n in names]
        counts = ", ".join(f"{states.count(s)} {s}" for s in dict.fromkeys(states))
        lines.append(f"- **{name}** ({len(names)}): {counts}")
    lines += ["", "## Databases", "",
              "| database | wave | result | versions | deployment | time | detail |",
              "|---|---|---|---|---|---|---|"]
    for o in run.outcomes.values():
        versions = (f"{o.from_version or 0:04d} → {o.to_version or 0:04d}"
                    if o.to_version is not None else "")
        what = o.detail if o.status != "failed" else f"exit {o.exit_code} at {o.gate}: {o.error}"
        lines.append(f"| {o.name} | {o.wave} | {MARK.get(o.status, '?')} {o.status} | "
                     f"{versions} | {o.deployment_id or ''} | {o.duration_ms} ms | "
                     f"{cell(what)[:400]} |")
    failed = [o for o in run.outcomes.values() if o.status == "failed"]
    if failed:
        lines += ["", "## Failures", ""]
        for o in failed:
            lines += [f"### {o.name} (exit {o.exit_code}, at {o.gate or 'start'})", "",
                      f"Target: {o.target}", "", "```", o.error.rstrip(), "```", ""]
    lines += ["", "## Next", ""]
    if run.outcome == "complete" and not failed:
        lines.append("- nothing: every database of this run is deployed")
    else:
        lines.append("- fix the failures above, then run the same command again: it "
                     "continues this run and deploys no database twice")
    return "\n".join(lines) + "\n"


def cell(text: str) -> str:
    return one_line(text).replace("|", "\\|")
