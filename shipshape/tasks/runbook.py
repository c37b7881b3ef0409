"""runbook.*: list, show, run and document the runbooks (runbooks/*.yaml)."""

from __future__ import annotations

from shipshape.tasks._task import task

_HELP = {
    "name": "the runbook's id (see `invoke runbook.list`)",
    "runbooks_dir": "directory of runbook YAML files (default: runbooks/)",
    "reason": "why this run happens; required in prod, recorded in the run and its report",
    "long_transaction": "sessions holding locks in a transaction open longer than this are "
                        "findings (default 60s)",
    "out": "where to write the guide (default: docs/runbooks.md)",
    "check": "write nothing; exit 2 when the file differs from a fresh render",
}


def _load(runbooks_dir, sql_dir):
    from shipshape.ops import runbooks
    from shipshape.tasks._task import environment

    _, directory = environment("local", (), sql_dir)
    return runbooks.load(runbooks_dir, sql_dir=directory), directory


@task(name="list", help=_HELP)
def list_(c, runbooks_dir=None, sql_dir=None, json_=False):
    """List the runbooks (validating every file): id, title, the findings that detect it."""
    from shipshape.console import emit_json, print_table

    books, _ = _load(runbooks_dir, sql_dir)
    if json_:
        emit_json([{"id": b.id, "title": b.title, "priority": b.priority,
                    "detects": [str(m) for m in b.detects],
                    "steps": [f"{s.id} ({s.do})" for s in b.steps],
                    "path": b.path} for b in books])
        return
    print_table("runbooks, in the order doctor runs them", ["id", "title", "detects", "steps"],
                [[b.id, b.title, ", ".join(str(m) for m in b.detects),
                  ", ".join(s.id for s in b.steps) or "(escalates)"] for b in books])


@task(help=_HELP, positional=["name"])
def show(c, name, runbooks_dir=None, sql_dir=None, json_=False):
    """Show one runbook: symptoms, detection, steps, verification, escalation."""
    from shipshape.console import emit_json, print_text
    from shipshape.ops import runbooks

    books, directory = _load(runbooks_dir, sql_dir)
    book = runbooks.get(books, name)
    if json_:
        emit_json(book)
        return
    print_text("\n".join(runbooks.render_book(book, directory)))


@task(iterable=["set_"], help=_HELP, positional=["name"])
def run(c, name, env="local", dsn=None, sql_dir=None, dry_run=False, yes=False, reason=None,
        json_=False, set_=None, long_transaction=None, runbooks_dir=None):
    """Run a runbook: detect, plan (exact SQL), confirm, fix, verify, report.

    The steps run in order; the report goes to reports/ (Markdown and JSON).

    --dry-run shows the plan and changes nothing. Outside local the steps need --yes (in
    prod also --reason "..."); ending a session always needs --yes. Without a terminal
    (CI), --yes is the only confirmation. A failed step stops the run; the same command
    again resumes after the last step that succeeded. Exit 0 when fixed (or nothing to
    do), 2 when problems remain, 3 when refused or escalated, else the failing step's code.
    """
    import sys

    from shipshape import commands
    from shipshape.console import emit_json, print_text
    from shipshape.errors import ShipshapeError
    from shipshape.ops import runbooks
    from shipshape.tasks._task import progress, target

    tgt, directory = target(env, dsn, set_, sql_dir)
    stream = sys.stderr if json_ else sys.stdout
    shown = progress(quiet=json_)
    confirm = _asker(shown) if sys.stdin is not None and sys.stdin.isatty() else None
    try:
        result = commands.run_runbook(
            tgt, directory, name, runbooks_dir=runbooks_dir, dry_run=dry_run, yes=yes,
            reason=reason, confirm=confirm, long_transaction=long_transaction,
            command_options={"sql_dir": sql_dir, "runbooks_dir": runbooks_dir},
            progress=shown, show=lambda text: print_text(text, stream))
    except ShipshapeError as exc:
        result = exc.result
        if result is not None and json_:
            # One JSON document: the run, with the error; the paragraph goes to stderr.
            emit_json({**result.as_dict(), "error": str(exc), "exit_code": exc.exit_code})
            exc.reported = True
        elif result is not None and result.steps and result.outcome in ("failed", "unresolved"):
            # the steps with the plan on stdout; the error, the one final message, on
            # stderr (issue 11: the message came two or three times, split across both)
            print_text(runbooks.render_result(result, message=False))
        raise
    if json_:
        emit_json(result.as_dict())
        return
    if result.outcome in ("fixed", "dry-run"):
        print_text(runbooks.render_result(result, message=False))
    print_text(runbooks.final_message(result), sys.stderr)


def _asker(shown):
    """The question on the terminal, once the live status line is stopped: while it runs,
    rich stands in for sys.stderr, draws over the question and reads `[y/N]` as markup
    (the operator saw "...? " and no [y/N])."""

    def ask(question: str) -> bool:
        close = getattr(shown, "close", None)
        if close is not None:
            close()
        return _prompt(question)

    return ask


def _prompt(question: str) -> bool:
    import sys

    sys.stderr.write(question)
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


@task(help=_HELP)
def docs(c, out=None, runbooks_dir=None, sql_dir=None, check=False):
    """Write docs/runbooks.md, the troubleshooting guide, from the runbooks themselves.

    Generated from the runbooks that actually run, so it never goes stale; --check
    exits 2 when the committed guide differs from a fresh render.
    """
    from pathlib import Path

    from shipshape.console import print_final
    from shipshape.errors import ProblemsFound
    from shipshape.ops import runbooks
    from shipshape.paths import project_root

    books, directory = _load(runbooks_dir, sql_dir)
    text = runbooks.render_docs(books, directory)
    path = Path(out) if out else project_root() / runbooks.DOCS_PATH
    if check:
        current = path.read_text() if path.exists() else ""
        if current != text:
            raise ProblemsFound(f"{path} is stale: run `invoke runbook.docs` and commit it.")
        print_final(f"{path} is up to date ({len(books)} runbooks).")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print_final(f"wrote {path} ({len(books)} runbooks)")
