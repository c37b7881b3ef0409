"""Which app releases run, and whether a contract migration may run while they do.

Each replica of the app records itself in shipshape.app_instances (created by the
project's migration 0012_app_instances; the app writes it, shipshape only reads it): its
release is the schema version it was built for, and it refreshes last_seen every few
seconds. A contract migration of version V removes or tightens what releases before V
use, so it is refused while a replica of such a release is alive (its heartbeat newer
than env.app_heartbeat_ttl). A project without the table registers no replica: nothing
holds its contract migrations back, which the deploy says in its contract gate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import class_row

from shipshape import db
from shipshape.errors import OldReleaseRunning
from shipshape.settings import Environment, parse_duration

TABLE = "shipshape.app_instances"


@dataclass(frozen=True)
class Replica:
    """A running app process, as its heartbeat row says."""

    instance: str
    release: int
    host: str
    started_at: datetime
    last_seen: datetime
    seconds_ago: int


def alive(conn: psycopg.Connection, env: Environment) -> list[Replica] | None:
    """The replicas alive within the heartbeat TTL; None when the table does not exist
    (the project records no replicas). Ends the read's transaction."""
    if not db.table_exists(conn, TABLE):
        db.end_read(conn)
        return None
    with conn.cursor(row_factory=class_row(Replica)) as cur:
        found = cur.execute(db.query("app_instances_alive"),
                            {"ttl_seconds": parse_duration(env.app_heartbeat_ttl)}).fetchall()
    db.end_read(conn)
    return found


def blocking(replicas: list[Replica], contracts) -> list[Replica]:
    """The replicas that a contract migration among `contracts` would break: those of a
    release older than the newest of them."""
    newest = max(m.version for m in contracts)
    return [r for r in replicas if r.release < newest]


def refuse_contract(conn: psycopg.Connection, env: Environment, contracts, *,
                    rerun: str | None = None) -> str:
    """Raise OldReleaseRunning (Refused, exit 3) when a live replica runs a release that `contracts` break;
    else say what was checked (for the deploy's contract gate). `rerun`: the command that
    runs this contract phase again (a fleet's is fleet.deploy, not deploy)."""
    replicas = alive(conn, env)
    if replicas is None:
        return f"no {TABLE} table: no replica registers itself, none checked"
    old = blocking(replicas, contracts)
    if not old:
        return (f"{len(replicas)} live replica(s), none older than release "
                f"{max(m.version for m in contracts):04d}")
    names = ", ".join(m.name for m in contracts)
    newest = max(m.version for m in contracts)
    running = "; ".join(f"{r.instance}{f' on {r.host}' if r.host else ''} runs release "
                        f"{r.release:04d} (seen {r.seconds_ago}s ago)" for r in old[:5])
    raise OldReleaseRunning(
        f"Contract migration(s) {names} would break app release(s) older than {newest:04d}, "
        f"and {len(old)} replica(s) of such a release are still running: {running}. "
        f"Nothing was applied. Roll every replica to a release built for {newest:04d} or "
        f"later (the expand phase has already made the database ready for it), wait until "
        f"the old ones stop (a replica that stops heartbeating counts as gone after "
        f"{env.app_heartbeat_ttl}), then run "
        f"`{rerun or f'invoke deploy --env {env.name} --phase contract'}`.")
