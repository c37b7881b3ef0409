"""The database knows which environment it is.

The first deploy stamps the env's name into shipshape.environment; from then on every
command that writes compares the stamp with --env and refuses (exit 3) when they differ,
so `DATABASE_URL=<staging> invoke deploy` (--env defaults to local) can no longer seed
local's demo user into staging or roll it back without a prompt. A database deployed
before stamps existed is known by its last successful deploy, and stamped on its next
one. Changing a stamp is rare and deliberate: `invoke db.stamp --env NEW --from OLD --yes
--reason "..."`, which names the old stamp so that it cannot be done by accident.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from shipshape import db
from shipshape.errors import Refused
from shipshape.settings import Environment


@dataclass(frozen=True)
class Identity:
    name: str
    source: str  # "stamp" or "last deploy"


def read(conn: psycopg.Connection) -> Identity | None:
    """The env this database belongs to, or None for a database never deployed."""
    row = None
    if db.table_exists(conn, "shipshape.environment"):
        row = conn.execute(db.query("identity_read")).fetchone()
    if row is None and db.table_exists(conn, "shipshape.deployments"):
        row = conn.execute(db.query("identity_legacy")).fetchone()
    db.end_read(conn)
    return Identity(*row) if row else None


def check(conn: psycopg.Connection, env: Environment, *, what: str) -> Identity | None:
    """Refuse (exit 3) when the database belongs to another env than the command's."""
    found = read(conn)
    if found is not None and found.name != env.name:
        how = "is stamped" if found.source == "stamp" else "was last deployed as"
        raise Refused(
            f"This database {how} `{found.name}`, but {what} runs with --env {env.name} "
            f"(the default is local). Nothing was changed. Run it with `--env {found.name}`; "
            f"if the database really belongs to {env.name} now, re-stamp it deliberately: "
            f"`invoke db.stamp --env {env.name} --from {found.name} --yes --reason \"...\"`.")
    return found


def stamp(conn: psycopg.Connection, env_name: str, *, by: str, reason: str = "") -> None:
    """Write the stamp (under the migration lock), in its own transaction."""
    with conn.transaction():
        conn.execute(db.query("identity_bootstrap"))
        conn.execute(db.query("identity_stamp"), {"name": env_name, "by": by, "reason": reason})


def ensure(conn: psycopg.Connection, env: Environment, *, what: str) -> None:
    """check(), then stamp a database that has no stamp yet (a first deploy, or one from
    before stamps existed). Call under the migration lock."""
    found = check(conn, env, what=what)
    if found is None or found.source != "stamp":
        stamp(conn, env.name, by=db.operator())
