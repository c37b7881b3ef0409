"""The peers a user would pick instead of shipshape, fed the same SQL.

Each peer gets its own migration files, generated from bench.trees.Migration (the very
SQL that shipshape and psql run), and is run through its own CLI, as its users run it:

- alembic: one revision per migration whose upgrade() is `op.execute(sql)`; env.py is
  alembic's generic online one, with `transaction_per_migration` from `-x tpm=1|0`
  (per migration, or all of them in one transaction: alembic's default on PostgreSQL).
  Logging as `alembic init` writes it (INFO for alembic: one line per revision).
- yoyo-migrations: NNNN_slug.sql and NNNN_slug.rollback.sql; `yoyo apply --batch`.
- dbmate (npm package `dbmate`): NNNN_slug.sql with `-- migrate:up` / `-- migrate:down`;
  `dbmate --no-dump-schema up` (its default also runs pg_dump after migrating).
- migra (bench/verify.py): a schema diff, the peer of `invoke db.verify`.

A peer that is not installed is skipped, with the reason and the command that installs it.
SQLAlchemy-based peers use psycopg 3 (`postgresql+psycopg://`), the driver shipshape uses.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.common import BENCH_DIR, venv_bin
from bench.trees import Migration

PIP_HINT = "pip install -e '.[bench]' (make bench does it)"
NPM_HINT = "npm install --prefix bench/node dbmate (make bench does it)"


@dataclass(frozen=True)
class Tool:
    name: str
    path: Path | None  # None: not installed
    reason: str = ""  # why it is skipped

    @property
    def available(self) -> bool:
        return self.path is not None


def _python_tool(name: str, executable: str, module: str) -> Tool:
    path = venv_bin(executable)
    if not path.exists():
        return Tool(name, None, f"{name} is not installed: {PIP_HINT}")
    try:
        __import__(module)
    except Exception as exc:  # installed but broken: say why
        return Tool(name, None, f"{name} does not import: {type(exc).__name__}: {exc}")
    return Tool(name, path)


def alembic() -> Tool:
    return _python_tool("alembic", "alembic", "alembic")


def yoyo() -> Tool:
    return _python_tool("yoyo-migrations", "yoyo", "yoyo")


def migra() -> Tool:
    return _python_tool("migra", "migra", "migra")


def dbmate() -> Tool:
    """The npm package's command (node_modules/.bin/dbmate, a node shim that runs the
    platform binary), as `npx dbmate` runs it; else a dbmate on PATH."""
    shim = BENCH_DIR / "node" / "node_modules" / ".bin" / "dbmate"
    if shim.exists():
        if not shutil.which("node"):
            return Tool("dbmate", None, "bench/node has dbmate but node is not on PATH")
        return Tool("dbmate", shim)
    found = shutil.which("dbmate")
    if found:
        return Tool("dbmate", Path(found))
    return Tool("dbmate", None, f"dbmate is not installed: {NPM_HINT}")


def dbmate_native() -> Path | None:
    """The platform binary inside the npm package (what the shim spawns), if any."""
    found = sorted((BENCH_DIR / "node" / "node_modules" / "@dbmate").glob("*/bin/dbmate"))
    return found[0] if found else None


def sqlalchemy_url(dsn: str) -> str:
    """postgresql://... -> postgresql+psycopg://... (psycopg 3)."""
    scheme, rest = dsn.split("://", 1)
    if scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a postgresql:// URL: {scheme}://...")
    return f"postgresql+psycopg://{rest}"


def dbmate_url(dsn: str) -> str:
    return dsn + ("&" if "?" in dsn else "?") + "sslmode=disable"


# --- file writers -------------------------------------------------------------------------------

ALEMBIC_INI = """\
[alembic]
script_location = %(here)s
path_separator = os

[loggers]
keys = root,sqlalchemy,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console
qualname =

[logger_sqlalchemy]
level = WARNING
handlers =
qualname = sqlalchemy.engine

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
datefmt = %H:%M:%S
"""

ALEMBIC_ENV = '''\
"""alembic's generic online env.py; the URL and the transaction mode come from -x."""
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)
x = context.get_x_argument(as_dictionary=True)

connectable = create_engine(x["url"], poolclass=pool.NullPool)
with connectable.connect() as connection:
    context.configure(connection=connection, target_metadata=None,
                      transaction_per_migration=x.get("tpm", "1") == "1")
    with context.begin_transaction():
        context.run_migrations()
'''

ALEMBIC_REVISION = '''\
"""{name}"""
from alembic import op

revision = {revision!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
    op.execute({up!r})


def downgrade():
    op.execute({down_sql!r})
'''


def write_alembic(root: Path, migrations: list[Migration]) -> Path:
    """An alembic project: alembic.ini, env.py, versions/NNNN_slug.py. Returns the ini."""
    (root / "versions").mkdir(parents=True, exist_ok=True)
    (root / "alembic.ini").write_text(ALEMBIC_INI)
    (root / "env.py").write_text(ALEMBIC_ENV)
    previous = None
    for m in migrations:
        revision = f"{m.version:04d}"
        (root / "versions" / f"{m.name}.py").write_text(ALEMBIC_REVISION.format(
            name=m.name, revision=revision, down=previous, up=m.up, down_sql=m.down))
        previous = revision
    return root / "alembic.ini"


def write_yoyo(root: Path, migrations: list[Migration]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for m in migrations:
        (root / f"{m.name}.sql").write_text(m.up)
        (root / f"{m.name}.rollback.sql").write_text(m.down)
    return root


def write_dbmate(root: Path, migrations: list[Migration]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for m in migrations:
        (root / f"{m.name}.sql").write_text(
            f"-- migrate:up\n{m.up}\n-- migrate:down\n{m.down}")
    return root


def write_plain(path: Path, migrations: list[Migration]) -> Path:
    """All the up SQL, concatenated: what a DBA would feed psql with no tool at all."""
    path.write_text("".join(m.up for m in migrations))
    return path


# --- commands -------------------------------------------------------------------------------------

def alembic_upgrade(tool: Tool, ini: Path, dsn: str, *, per_migration: bool) -> list[str]:
    return [str(tool.path), "-c", str(ini), "-x", f"url={sqlalchemy_url(dsn)}",
            "-x", f"tpm={'1' if per_migration else '0'}", "upgrade", "head"]


def alembic_current(tool: Tool, ini: Path, dsn: str) -> list[str]:
    return [str(tool.path), "-c", str(ini), "-x", f"url={sqlalchemy_url(dsn)}", "current"]


def yoyo_apply(tool: Tool, directory: Path, dsn: str) -> list[str]:
    return [str(tool.path), "apply", "--batch", "--no-config-file",
            "--database", sqlalchemy_url(dsn), str(directory)]


def yoyo_list(tool: Tool, directory: Path, dsn: str) -> list[str]:
    return [str(tool.path), "list", "--batch", "--no-config-file",
            "--database", sqlalchemy_url(dsn), str(directory)]


def dbmate_cmd(executable: Path, directory: Path, dsn: str, verb: str) -> list[str]:
    return [str(executable), "--url", dbmate_url(dsn), "--migrations-dir", str(directory),
            "--no-dump-schema", verb]
