"""Generated SQL trees, in the shipped layout (tests/treeutil.write_migration style).

`fk_migrations(n)` is the apply benchmark's workload: plain SQL (no Jinja), so the very
same text can be handed to psql and to every peer (bench/peers.py writes their files).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.treeutil import write_migration


@dataclass(frozen=True)
class Migration:
    """One generated migration: plain SQL, the same for shipshape, psql and the peers."""

    version: int
    slug: str
    up: str
    down: str

    @property
    def name(self) -> str:
        return f"{self.version:04d}_{self.slug}"


def fk_migrations(count: int) -> list[Migration]:
    """`count` migrations; migration v creates table fk_tNNNN with a primary key, a foreign
    key to the table of migration v-1 (the first one to itself) and an index on that key.

    Rollback: DROP TABLE. No colons in the SQL, so SQLAlchemy's text() (alembic's
    op.execute) sees no bind parameters.
    """
    out = []
    for version in range(1, count + 1):
        table = f"fk_t{version:04d}"
        parent = f"fk_t{version - 1:04d}" if version > 1 else table
        up = (f"CREATE TABLE {table} (\n"
              f"    id bigserial PRIMARY KEY,\n"
              f"    parent_id bigint REFERENCES {parent} (id) ON DELETE CASCADE,\n"
              f"    name text NOT NULL,\n"
              f"    amount numeric(12, 2),\n"
              f"    created_at timestamptz NOT NULL DEFAULT now()\n"
              f");\n"
              f"CREATE INDEX {table}_parent_idx ON {table} (parent_id);\n")
        out.append(Migration(version, f"create_{table}", up, f"DROP TABLE {table};\n"))
    return out


def write_shipshape_tree(root: Path, migrations: list[Migration]) -> Path:
    """The shipped layout: migrations/NNNN_slug/{migrate,rollback}.sql.j2."""
    for m in migrations:
        write_migration(root, m.name, m.up, "-- shipshape:destructive\n" + m.down)
    return root


def schema_tree(root: Path, migrations: int = 50, tables_per: int = 10) -> Path:
    """migrations x tables_per tables, each with a primary key, a unique column, a foreign
    key to the table created before it (ON DELETE CASCADE), and an index on that key."""
    previous = None
    for m in range(1, migrations + 1):
        up, created = [], []
        for j in range(tables_per):
            table = f"s{m:03d}_{j:02d}"
            parent = (f",\n    parent_id bigint REFERENCES {previous} (id) ON DELETE CASCADE"
                      if previous else "")
            up.append(
                f"CREATE TABLE {table} (\n"
                f"    id bigserial PRIMARY KEY,\n"
                f"    code text NOT NULL UNIQUE,\n"
                f"    payload jsonb NOT NULL DEFAULT '{{}}'::jsonb,\n"
                f"    created_at timestamptz NOT NULL DEFAULT now(){parent}\n"
                f");\n"
                + (f"CREATE INDEX {table}_parent_idx ON {table} (parent_id);\n" if previous else "")
            )
            created.append(table)
            previous = table
        down = "-- shipshape:destructive\n" + "".join(
            f"DROP TABLE {table};\n" for table in reversed(created))
        write_migration(root, f"{m:04d}_schema_part_{m:03d}", "\n".join(up), down)
    return root
