"""Jinja rendering of the SQL tree, with the environment's settings as the context.

StrictUndefined: a misspelt setting is an error naming file:line, never empty SQL.
"""

from __future__ import annotations

import re
import traceback
from pathlib import Path

import jinja2
from psycopg import sql

from shipshape.errors import ConfigError
from shipshape.settings import Environment

# `-- shipshape:<name> [argument]` lines in the rendered SQL: no-transaction,
# destructive, irreversible <reason> (a forward-only migration without a rollback file),
# imported-from <tool> <version> (written by db.import, read by db.baseline --from).
_DIRECTIVE = re.compile(r"^[ \t]*--[ \t]*shipshape:[ \t]*([a-z-]+)(?:[ \t]+([^\n]*?))?[ \t]*$", re.M)
KNOWN_DIRECTIVES = {"no-transaction", "destructive", "irreversible", "imported-from"}


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

    def __init__(self, sql_dir: Path | str, env: Environment):
        self.sql_dir = Path(sql_dir)
        self.env = env
        self.jinja = jinja2.Environment(
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
        self.jinja.filters.update(ident=ident, literal=literal)
        self.jinja.globals["env"] = env.context()
        macros = self.jinja.get_template("macros.sql.j2").module
        self.jinja.globals.update(
            {name: getattr(macros, name) for name in dir(macros) if not name.startswith("_")}
        )

    def render(self, path: Path | str, **context) -> str:
        """Render a template given by a path inside the SQL tree (or the package)."""
        name = self._template_name(Path(path))
        try:
            return self.jinja.get_template(name).render(**context)
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


def directive_arguments(text: str) -> dict[str, str]:
    """Each directive's name and what follows it on its line ("" when nothing does)."""
    found: dict[str, str] = {}
    for name, argument in _DIRECTIVE.findall(text):
        found.setdefault(name, argument.strip())
    return found
