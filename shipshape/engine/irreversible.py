"""Forward-only migrations, declared: `-- shipshape:irreversible <reason>` in migrate.sql.j2.

Such a migration carries no rollback.sql.j2 (a fake one would lie to whoever rolls back);
a rollback across it is refused (exit 3) before anything changes, naming it and the
reason. The declaration is read from the template's source, so that discovery (which
renders nothing) knows the rollback file is not missing by accident.
"""

from __future__ import annotations

from pathlib import Path

from shipshape.engine.render import directive_arguments
from shipshape.errors import Refused

DIRECTIVE = "irreversible"


def reason_in(source: str | None) -> str | None:
    """The reason given by a migrate template's irreversible directive (source: its
    text), None when it has none."""
    if not source or "shipshape:" not in source:  # the common case, without a regex
        return None
    return directive_arguments(source).get(DIRECTIVE)


def problems(directory: Path | str, source: str | None, rollback_file: str) -> list[str] | None:
    """Problems of a migration declared irreversible (source: its migrate template's
    text, None when unreadable); None when it is not declared so."""
    reason = reason_in(source)
    if reason is None:
        return None
    found = []
    if not reason:
        found.append(f"{directory}: `-- shipshape:{DIRECTIVE}` needs a reason on the same line "
                     f"(why this migration cannot be undone)")
    if (Path(directory) / rollback_file).exists():
        found.append(f"{directory}: declared irreversible but has {rollback_file}; keep one "
                     f"or the other")
    return found


def refuse_rollback(todo) -> None:
    """Refuse (exit 3) a rollback whose plan crosses a forward-only migration."""
    blocked = [m for m in todo if getattr(m, "irreversible", None)]
    if blocked:
        raise Refused(
            "Refusing to roll back: the plan crosses migration(s) declared irreversible "
            "(they have no rollback). Nothing was changed. Roll back to a version at or "
            "above the newest of them, or write a new forward migration instead:",
            details=[f"{m.version:04d} {m.name}: {m.irreversible}" for m in blocked],
        )
