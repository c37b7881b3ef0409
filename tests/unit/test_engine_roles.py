"""Each fact of the engine has one writer: checked on the source, so a second one fails."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "shipshape"


def _sources(*suffixes: str) -> dict[Path, str]:
    return {p: p.read_text() for p in sorted(PACKAGE.rglob("*"))
            if p.is_file() and "".join(p.suffixes).endswith(suffixes)}


def test_only_the_history_statements_write_history_rows():
    writes = re.compile(r"\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+shipshape\.history\b",
                        re.IGNORECASE)
    writers = sorted(str(p.relative_to(PACKAGE)) for p, text in
                     _sources(".py", ".sql", ".j2").items() if writes.search(text))
    assert writers == ["queries/history_delete.sql", "queries/history_insert.sql",
                       "queries/history_rerecord.sql"]


def test_only_engine_history_runs_them():
    users = sorted(str(p.relative_to(PACKAGE)) for p, text in _sources(".py").items()
                   if re.search(r"['\"]history_(insert|delete|rerecord)['\"]", text))
    assert users == ["engine/history.py"]


def _calls(path: Path) -> set[str]:
    """dotted names of everything called in a module: `history.record`, `conn.commit`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            parts, func = [], node.func
            while isinstance(func, ast.Attribute):
                parts.insert(0, func.attr)
                func = func.value
            if isinstance(func, ast.Name):
                found.add(".".join([func.id, *parts]))
    return found


def test_verify_calls_nothing_that_writes():
    calls = _calls(PACKAGE / "engine" / "verify.py")
    writers = {"history.record", "history.ensure_history", "history.delete",
               "migrations.apply", "migrations.migrate", "seeds.apply", "conn.commit"}
    assert not calls & writers


def test_shadow_is_the_engines_only_user_of_scratch_servers():
    users = sorted(str(p.relative_to(PACKAGE)) for p, text in _sources(".py").items()
                   if "scratch_server(" in text and "engine" in p.parts)
    assert users == ["engine/shadow.py"]



def test_one_file_decides_which_schemas_a_snapshot_covers():
    from shipshape.engine.catalog import SECTIONS, catalog_query

    rule = "NOT IN ('information_schema', 'shipshape')"
    holders = sorted(p.name for p in (PACKAGE / "queries" / "catalog").glob("*.sql")
                     if rule in p.read_text())
    assert holders == ["in_scope.sql"]
    for section in SECTIONS.values():
        assert catalog_query(section).count(rule) == 1, section
