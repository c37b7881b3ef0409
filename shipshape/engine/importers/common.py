"""Write a foreign tree as shipshape migrations, and the review of what was found.

Each foreign migration becomes sql/migrations/NNNN_slug/ (NNNN in the foreign order,
after any migration already there). Its SQL is wrapped in `{% raw %}...{% endraw %}` so
Jinja leaves every byte alone (a literal `{% endraw %}` inside is re-emitted as a string);
every written template is rendered back and compared with the foreign SQL before
anything is written, so the import cannot change what runs. The directives above it:
imported-from <tool> <version> (db.baseline --from maps the tool's history through it),
irreversible when the tool has no rollback, destructive when the classifier (or the
deploy gate's own check) finds statements that can lose data, no-transaction when the
tool ran it outside a transaction or a statement cannot run inside one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from shipshape.engine import migrations, sqlparse
from shipshape.engine.importers import dbmate, flyway, golang_migrate, prisma
from shipshape.engine.importers.foreign import Foreign
from shipshape.engine.importers.foreign_history import TABLES
from shipshape.errors import ConfigError, Refused

READERS = {"prisma": prisma.read, "flyway": flyway.read, "dbmate": dbmate.read,
           "golang-migrate": golang_migrate.read}
_ENDRAW = re.compile(r"\{%[-+]?\s*endraw\s*[-+]?%\}")


@dataclass
class Written:
    directory: str          # NNNN_slug
    foreign: Foreign
    migrate: str            # the template text
    rollback: str | None
    destructive: list[str] = field(default_factory=list)       # "line N: action object"
    rollback_destructive: list[str] = field(default_factory=list)
    no_transaction: str = ""  # why, when it is


@dataclass
class ImportResult:
    tool: str
    out: Path
    written: list[Written]
    unsupported: list[str]
    dry_run: bool

    def review(self) -> list[str]:
        verb = "Would import" if self.dry_run else "Imported"
        lines = [f"{verb} {len(self.written)} {self.tool} migration(s) into {self.out / 'migrations'}:"]
        for w in self.written:
            lines.append(f"  {w.directory}  <- {w.foreign.version} ({w.foreign.source})")
        destructive = [w for w in self.written if w.destructive or w.rollback_destructive]
        lines.append(f"Destructive statements ({sum(len(w.destructive) for w in self.written)} "
                     f"forward, {sum(len(w.rollback_destructive) for w in self.written)} in "
                     f"rollbacks); declared `-- shipshape:destructive`:")
        for w in destructive:
            for what, hits in (("migrate", w.destructive), ("rollback", w.rollback_destructive)):
                for hit in hits:
                    lines.append(f"  {w.directory}/{what}: {hit}")
        if not destructive:
            lines.append("  none")
        forward_only = [w for w in self.written if w.foreign.down is None]
        lines.append("No rollback (declared `-- shipshape:irreversible`):")
        lines += [f"  {w.directory}" for w in forward_only] or ["  none"]
        outside = [w for w in self.written if w.no_transaction]
        if outside:
            lines.append("Outside a transaction (`-- shipshape:no-transaction`):")
            lines += [f"  {w.directory}: {w.no_transaction}" for w in outside]
        if self.unsupported:
            lines.append("Not imported:")
            lines += [f"  {u}" for u in self.unsupported]
        lines.append(f"Keep {TABLES[self.tool]} in the database: `invoke db.baseline --from "
                     f"{self.tool}` reads it, and because these migrations were imported from "
                     f"{self.tool}, verify leaves it outside what they own (never drop it).")
        return lines


def slug(name: str) -> str:
    cleaned = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return cleaned if cleaned and cleaned[0].isalnum() else f"m_{cleaned}".rstrip("_") or "migration"


def wrap(sql: str) -> str:
    """sql as a template that renders to exactly sql (line endings aside: Jinja writes \\n)."""
    body = _ENDRAW.sub(lambda m: "{%+ endraw %}{{ " + repr(m.group(0)) + " }}{% raw %}", sql)
    return "{% raw %}" + body + "{%+ endraw %}\n"


def _destructive(sql: str, where: Path) -> list[str]:
    try:
        hits = sqlparse.destructive_lines(sql)
    except sqlparse.SQLSyntaxError as exc:
        raise Refused(f"{where}: not valid PostgreSQL ({exc}); fix it in the source tree and "
                      f"import again.") from None
    return hits  # the deploy gate's own classifier: what it would refuse is declared


def _no_transaction(foreign: Foreign) -> str:
    if foreign.no_transaction:
        return f"{foreign.tool} ran it outside a transaction"
    outside = [s for s in sqlparse.classify(foreign.up) if not s.transactional]
    if outside:
        return f"line {outside[0].line}: {outside[0].kind} cannot run in a transaction"
    return ""


def _header(directives: list[str]) -> str:
    return "".join(f"-- shipshape:{d}\n" for d in directives)


def convert(tool: str, path: Path, out: Path, *, dry_run: bool = False) -> ImportResult:
    if tool not in READERS:
        raise ConfigError(f"--from {tool}: unknown tool; known: {', '.join(READERS)}.")
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"{path}: no such directory.")
    tree = READERS[tool](path)
    if not tree.migrations:
        raise Refused(f"{path}: no {tool} migrations found.", details=tree.unsupported)
    existing = migrations.discover(out) if (Path(out) / "migrations").is_dir() else []
    taken = {_imported_from(s.migrate_path) for s in existing} - {None}
    again = [f for f in tree.migrations if f"{tool} {f.version}" in taken]
    if again:
        raise Refused(f"{out} already holds imported {tool} migration(s): "
                      f"{', '.join(f.version for f in again)}. Nothing was written.")
    number = max((s.version for s in existing), default=0)
    written = []
    for foreign in tree.migrations:
        number += 1
        item = Written(f"{number:04d}_{slug(foreign.name)}", foreign, "", None)
        item.destructive = _destructive(foreign.up, foreign.source)
        item.no_transaction = _no_transaction(foreign)
        directives = [f"imported-from {tool} {foreign.version}"]
        if foreign.down is None:
            directives.append(f"irreversible {tool} migrations have no rollback")
        if item.destructive:
            directives.append("destructive")
        if item.no_transaction:
            directives.append("no-transaction")
        item.migrate = _header(directives) + wrap(foreign.up)
        if foreign.down is not None:
            item.rollback_destructive = _destructive(foreign.down, foreign.source)
            item.rollback = (_header([f"imported-from {tool} {foreign.version}"]
                                     + (["destructive"] if item.rollback_destructive else []))
                             + wrap(foreign.down))
        _prove_unchanged(item)
        written.append(item)
    if not dry_run:
        for item in written:
            directory = Path(out) / "migrations" / item.directory
            directory.mkdir(parents=True, exist_ok=False)
            (directory / migrations.MIGRATE_FILE).write_text(item.migrate)
            if item.rollback is not None:
                (directory / migrations.ROLLBACK_FILE).write_text(item.rollback)
    return ImportResult(tool, Path(out), written, tree.unsupported, dry_run)


_RENDER = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True, autoescape=False)


def _prove_unchanged(item: Written) -> None:
    """The template renders to the header and then exactly the foreign SQL."""
    for template, sql in ((item.migrate, item.foreign.up), (item.rollback, item.foreign.down)):
        if template is None:
            continue
        header = template[: template.index("{% raw %}")]
        rendered = _RENDER.from_string(template).render()
        if rendered != header + sql.replace("\r\n", "\n"):
            raise Refused(f"{item.foreign.source}: wrapping it for Jinja would change its SQL; "
                          f"nothing was written. Please report this file.")


def _imported_from(path: Path) -> str | None:
    from shipshape.engine.render import directive_arguments

    try:
        return directive_arguments(path.read_text()).get("imported-from")
    except OSError:
        return None
