"""Statuses are enums in the code and the same strings as before in every output."""

from __future__ import annotations

import io
import json

from psycopg.types.json import Jsonb

from shipshape.console import emit_json
from shipshape.engine.migrations import Entry, State
from shipshape.ops.pipeline import Gate, GateStatus


def test_migration_states_keep_their_values():
    assert [s.value for s in State] == ["applied", "pending", "failed", "checksum-mismatch",
                                        "unknown"]
    out = io.StringIO()
    emit_json({"migrations": [Entry(1, "0001_a", State.CHECKSUM_MISMATCH, "changed")]}, out)
    assert json.loads(out.getvalue())["migrations"][0]["state"] == "checksum-mismatch"
    assert f"{State.FAILED}" == "failed" and State.APPLIED == "applied"


def test_gate_statuses_keep_their_values():
    assert {s.value for s in GateStatus} == {"ok", "failed", "skipped", "pending"}
    out = io.StringIO()
    emit_json({"gates": [Gate("migrate"), Gate("seed", GateStatus.OK)]}, out)
    assert [g["status"] for g in json.loads(out.getvalue())["gates"]] == ["pending", "ok"]
    # the deployments row's detail is written through psycopg's Jsonb
    detail = Jsonb({"gates": {"verify": GateStatus.FAILED}})
    assert json.loads(json.dumps(detail.obj)) == {"gates": {"verify": "failed"}}
