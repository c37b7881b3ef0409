"""up and down: the local stack on the embedded PostgreSQL."""

from __future__ import annotations

from shipshape.tasks._task import task


@task(iterable=["set_"])
def up(c, sql_dir=None, set_=None):
    """Start the embedded PostgreSQL for `local` (reused if running) and deploy to it."""
    from shipshape import embedded, pipeline
    from shipshape.report import print_table
    from shipshape.tasks._task import progress, target
    from shipshape.tasks.deploy import print_summary

    tgt, sql_dir = target("local", None, set_, sql_dir)
    result = pipeline.deploy(tgt, sql_dir, progress=progress())
    print_summary(result)
    status = embedded.local_status()
    print_table("what runs where", ["service", "where", "data"],
                [["PostgreSQL (embedded)", tgt.describe(), status.get("pgdata", "")]])


@task
def down(c):
    """Stop the local stack cleanly (the data stays for the next `make up`)."""
    from shipshape import embedded
    from shipshape.report import print_text

    stopped = embedded.stop_local()
    print_text("stopped the embedded PostgreSQL" if stopped else "the embedded PostgreSQL was not running")
