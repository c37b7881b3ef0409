"""A caller that has loaded the SQL tree hands it on: doctor and render load it no more."""

from __future__ import annotations

import pytest

from shipshape.engine import bundle, shadow, tree
from shipshape.errors import ProblemsFound
from shipshape.ops import doctor
from tests.conftest import ROOT
from tests.treeutil import small_tree


def test_doctor_and_the_bundle_use_the_tree_they_are_given(tmp_path, fresh_dsn, make_target,
                                                           cache_dir, monkeypatch):
    sql_dir = small_tree(tmp_path / "sql")
    target = make_target(fresh_dsn)
    code = tree.load(sql_dir, target.env)
    expected = shadow.shadow_snapshot(target, code.migrations)
    loads = []
    real_load = tree.load
    monkeypatch.setattr(tree, "load", lambda *args: loads.append(args) or real_load(*args))

    diagnosis = doctor.diagnose(target, sql_dir, code=code)
    written = bundle.write_bundle(tmp_path / "out", target.env, sql_dir, expected, code=code)
    assert loads == []
    assert {"MIGRATION_PENDING"} <= {f.code for f in diagnosis.findings}
    assert "0002_item_price" in written["migrate.sql"].read_text()

    doctor.diagnose(target, sql_dir)  # without it, verify loads the tree itself, as before
    assert len(loads) == 1


def test_a_runbook_run_renders_the_tree_once(tmp_path, fresh_dsn, make_target, cache_dir,
                                             monkeypatch):
    """The run and each doctor it runs share one loaded tree (it used to load it for each)."""
    from shipshape.engine import migrations
    from shipshape.ops import runbooks

    sql_dir = ROOT / "sql"  # the runbooks' fixes live in the project's tree
    target = make_target(fresh_dsn)
    loads = []
    real_load = migrations.load
    monkeypatch.setattr(migrations, "load", lambda *args: loads.append(args) or real_load(*args))

    # detect ran doctor: on an empty database every migration is pending, which is not
    # schema-drift's to fix
    with pytest.raises(ProblemsFound) as raised:
        runbooks.run(target, sql_dir, "schema-drift", dry_run=True)
    assert raised.value.result.outcome == "elsewhere"
    assert len(loads) == 1
