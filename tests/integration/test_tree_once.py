"""A caller that has loaded the SQL tree hands it on: doctor and render load it no more."""

from __future__ import annotations

from shipshape.engine import bundle, shadow, tree
from shipshape.ops import doctor
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
