"""Jinja rendering of the SQL tree, with the environment's settings as the context.

StrictUndefined: a misspelt setting is an error naming file:line, never empty SQL.
"""

from __future__ import annotations

import re
import traceback
from functools import cached_property
from pathlib import Path

from psycopg import sql

from shipshape.engine import rendercache
from shipshape.errors import ConfigError
from shipshape.settings import Environment

# Migration templates live here; what a template can include lives anywhere else.
_MIGRATIONS = "migrations"
_OWN_FILES = ("migrate.sql.j2", "rollback.sql.j2")

# `-- shipshape:<name> [argument]` lines in the rendered SQL: no-transaction,
# destructive, irreversible <reason> (a forward-only migration without a rollback file),
# imported-from <tool> <version> (written by db.import, read by db.baseline --from).
_DIRECTIVE = re.compile(r"^[ \t]*--[ \t]*shipshape:[ \t]*([a-z-]+)(?:[ \t]+([^\n]*?))?[ \t]*$", re.M)
KNOWN_DIRECTIVES = {"no-transaction", "destructive", "irreversible", "imported-from", "phase",
                    "lock-ok", "backfill"}


def ident(name: str) -> str:
    """Quote an identifier (camelCase columns need it; quoting is always safe)."""
    return sql.Identifier(str(name)).as_string(None)


def literal(value) -> str:
    """Quote a value as an SQL literal, with psycopg's own adapters (mappings and
    lists become jsonb)."""
    if isinstance(value, (dict, list)):
        from psycopg.types.json import Jsonb

        value = Jsonb(value)
    return sql.Literal(value).as_string(None)


class Renderer:
    """Renders templates of one SQL tree for one environment."""

    def __init__(self, sql_dir: Path | str, env: Environment,
                 cache: rendercache.RenderCache | None = None):
        self.sql_dir = Path(sql_dir)
        self.env = env
        self.cache = cache or rendercache.RenderCache()

    @cached_property
    def jinja(self):
        """Built on first use: a command with nothing to render imports no Jinja and
        compiles no template."""
        import jinja2

        jinja = jinja2.Environment(
            loader=jinja2.ChoiceLoader([
                jinja2.FileSystemLoader(str(self.sql_dir)),
                jinja2.PackageLoader("shipshape.engine", "templates"),
            ]),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            autoescape=False,
        )
        jinja.filters.update(ident=ident, literal=literal)
        jinja.globals["env"] = self.env.context()
        macros = jinja.get_template("macros.sql.j2").module
        jinja.globals.update(
            {name: getattr(macros, name) for name in dir(macros) if not name.startswith("_")}
        )
        return jinja

    def render_source(self, path: Path, source: str) -> str:
        """Render a template of the tree whose source text is `source` (as read by the
        caller), through the render cache: a template, settings and includes seen before
        are not rendered again. Errors are render()'s, and are never cached."""
        entry = rendercache.key(self._template_name(Path(path)), rendercache.digest(source),
                                self._settings, self._includes)
        text = self.cache.get(entry)
        if text is None:
            text = self.render(path)
            self.cache.put(entry, text)
        return text

    @cached_property
    def _settings(self) -> str:
        return rendercache.key(self.env.context())

    @cached_property
    def _includes(self) -> str:
        """Every template a migration can include or import: the package's own and the
        tree's outside migrations/ (a migration directory holds only its own two files)."""
        package = Path(__file__).with_name("templates")
        tree = [p for p in self.sql_dir.rglob("*.j2")
                if not _own_migration_file(p.relative_to(self.sql_dir).parts)]
        return rendercache.key(rendercache.fingerprint(sorted(package.glob("*.j2")), package),
                               rendercache.fingerprint(tree, self.sql_dir))

    def render(self, path: Path | str, **context) -> str:
        """Render a template given by a path inside the SQL tree (or the package)."""
        name = self._template_name(Path(path))
        jinja = self.jinja
        import jinja2

        try:
            return jinja.get_template(name).render(**context)
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(
                f"{self._where(exc.filename or name, exc.lineno)}: template syntax error: "
                f"{exc.message}. Fix the template and run the command again."
            ) from None
        except jinja2.TemplateNotFound as exc:
            raise ConfigError(f"Template not found: {exc.name} (in {self.sql_dir}).") from None
        except (jinja2.UndefinedError, jinja2.TemplateError, TypeError, ValueError,
                ArithmeticError, LookupError, AttributeError) as exc:
            filename, lineno = _template_frame(exc, name, self.sql_dir)
            raise ConfigError(
                f"{self._where(filename, lineno)}: template error: {exc}. "
                f"Known settings for templates: env.{', env.'.join(self.env.context())}."
            ) from None

    def _template_name(self, path: Path) -> str:
        """A file of the tree (absolute or relative to the working directory) becomes its
        name inside the tree; anything else is a template name (the package's own)."""
        if path.is_relative_to(self.sql_dir):  # the tree's own files: no disk access
            return path.relative_to(self.sql_dir).as_posix()
        if path.is_absolute() or path.exists():
            try:
                return path.resolve().relative_to(self.sql_dir.resolve()).as_posix()
            except ValueError:
                raise ConfigError(f"{path} is outside the SQL tree {self.sql_dir}.") from None
        return path.as_posix()

    def _where(self, filename: str, lineno: int | None) -> str:
        path = Path(filename)
        if not path.is_absolute():
            path = self.sql_dir / path
        return f"{path}:{lineno}" if lineno else str(path)


def _own_migration_file(parts: tuple[str, ...]) -> bool:
    """migrations/NNNN_slug/{migrate,rollback}.sql.j2: keyed by their own source, so a new
    migration does not change the key of every other one. (A template that includes
    another migration's own file is therefore not re-rendered when that file changes;
    those files never change once applied.)"""
    return len(parts) == 3 and parts[0] == _MIGRATIONS and parts[2] in _OWN_FILES


def _template_frame(exc: BaseException, default: str,
                    sql_dir: Path | None = None) -> tuple[str, int | None]:
    """The file and line to fix. Jinja rewrites tracebacks so template frames carry the
    template's file and line; the deepest frame in the SQL tree wins: a misspelt setting
    passed to one of shipshape's macros fails inside macros.sql.j2, but the line to fix is
    the call in the migration (issue 11: the error named the macro's line)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(".j2")]
    if sql_dir is not None:
        root = Path(sql_dir).resolve()
        own = [f for f in frames if Path(f.filename).resolve().is_relative_to(root)]
        frames = own or frames
    if frames:
        return frames[-1].filename, frames[-1].lineno
    return default, None


def directives(rendered: str) -> set[str]:
    """The `-- shipshape:...` directives in rendered SQL; unknown ones are errors."""
    found = set(directive_arguments(rendered))
    unknown = found - KNOWN_DIRECTIVES
    if unknown:
        raise ConfigError(
            f"Unknown directive(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(KNOWN_DIRECTIVES))}."
        )
    return found


def directive_lines(text: str, name: str) -> list[str]:
    """What follows each `-- shipshape:<name>` line, for a directive that may repeat."""
    return [argument.strip() for found, argument in _DIRECTIVE.findall(text) if found == name]


def directive_arguments(text: str) -> dict[str, str]:
    """Each directive's name and what follows it on its line ("" when nothing does)."""
    found: dict[str, str] = {}
    for name, argument in _DIRECTIVE.findall(text):
        found.setdefault(name, argument.strip())
    return found
