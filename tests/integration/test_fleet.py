"""`invoke fleet.*` against 60 real databases, as an operator runs it.

The databases are created once for the module (ss_fleet_*), reset before each test and
dropped at the end. Nothing here waits a fixed time or measures one: a test that must
catch a run in the middle holds some databases' own deploy locks, so the run cannot
finish them, and polls the databases' history until the others are done (a hung test is
pytest-timeout's to end).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import psycopg
import pytest
from psycopg import sql

from shipshape import db
from tests.conftest import ROOT, drop_database, dsn_for, run_invoke
from tests.treeutil import phased_tree, small_tree

FLEET_SIZE = 60


@pytest.fixture(scope="module")
def pool(admin_dsn):
    """60 empty databases for the module: [(name, dsn)], in fleet order."""
    prefix = f"ss_fleet_{uuid.uuid4().hex[:8]}"
    names = [f"{prefix}_{i:02d}" for i in range(FLEET_SIZE)]
    created = []
    try:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            for name in names:
                created.append(name)
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield [(f"db{i:02d}", dsn_for(admin_dsn, name)) for i, name in enumerate(names)]
    finally:
        # DROP DATABASE waits for a checkpoint: concurrent drops share them
        with ThreadPoolExecutor(max_workers=8) as dropping:
            list(dropping.map(lambda name: drop_database(admin_dsn, name), created))


def reset(members) -> None:
    """Each database as new: no shipshape schema, none of the tree's tables."""
    for _, dsn in members:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS shipshape CASCADE")
            conn.execute("DROP TABLE IF EXISTS items CASCADE")


@pytest.fixture
def workdir(tmp_path):
    small_tree(tmp_path / "sql")
    return tmp_path


def env_for(workdir, **extra) -> dict:
    return {"SHIPSHAPE_STATE_DIR": str(workdir / "state"),
            "SHIPSHAPE_REPORTS_DIR": str(workdir / "reports"), **extra}


def write_fleet(workdir, members, *, canary="{count: 1}", extra="", env_vars=None,
                name="fleet.yaml") -> str:
    """A fleet file; members given by env var (env_vars: name -> variable) or by DSN."""
    lines = ["fleet: t", "env: dev", "sql_dir: sql", f"canary: {canary}",
             "settings: {migration_lock_wait: 10min}", extra, "databases:"]
    for i, (member, dsn) in enumerate(members):
        if env_vars and member in env_vars:
            lines.append(f"  - {{name: {member}, dsn_env: {env_vars[member]}, "
                         f"labels: {{tier: t{i % 3}}}}}")
        else:
            lines.append(f"  - name: {member}\n    dsn: '{dsn}'\n    labels: {{tier: t{i % 3}}}")
    path = workdir / name
    path.write_text("\n".join(line for line in lines if line) + "\n")
    return str(path)


def fleet(command: str, fleet_file: str, workdir, *extra, env=None):
    return run_invoke(f"fleet.{command}", "--fleet", fleet_file, *extra,
                      env=env_for(workdir, **(env or {})), timeout=900)


def deployments(dsn) -> list[tuple]:
    """This database's own record: (id, result, from, to, run) per deploy."""
    with psycopg.connect(dsn) as conn:
        if conn.execute("SELECT to_regclass('shipshape.deployments')").fetchone()[0] is None:
            return []
        return conn.execute("SELECT id, result, from_version, to_version, detail->>'run' "
                            "FROM shipshape.deployments ORDER BY id").fetchall()


def version(dsn) -> int | None:
    with psycopg.connect(dsn) as conn:
        if conn.execute("SELECT to_regclass('shipshape.history')").fetchone()[0] is None:
            return None
        return conn.execute("SELECT max(version) FROM shipshape.history WHERE success"
                            ).fetchone()[0]


def assert_summary_matches_history(document: dict, dsns: dict) -> None:
    """Each database in the --json summary says what its own shipshape tables say."""
    for entry in document["databases"]:
        rows = deployments(dsns[entry["name"]])
        mine = [r for r in rows if r[4] == document["run_id"] and r[1] == "ok"]
        if entry["status"] in ("deployed", "already"):
            assert len(mine) == 1, (entry["name"], rows)
            row_id, _, from_version, to_version, _ = mine[0]
            assert entry["deployment_id"] == row_id, (entry, rows)
            assert (entry["from_version"], entry["to_version"]) == (from_version, to_version)
            assert version(dsns[entry["name"]]) == entry["to_version"] == 2
        elif entry["status"] == "not-run":
            assert rows == [] and version(dsns[entry["name"]]) is None, entry
        else:  # failed
            assert not mine, (entry, rows)


# --- the proofs ------------------------------------------------------------------------------

def test_a_canary_failure_stops_the_fleet_after_the_canary_wave(pool, workdir):
    reset(pool)
    dsns = dict(pool)
    canaries = ["db00", "db01", "db02"]
    with psycopg.connect(dsns["db01"], autocommit=True) as conn:
        conn.execute("CREATE TABLE items (conflict int)")  # 0001 creates items: it fails here
    fleet_file = write_fleet(workdir, pool, canary="{names: [db00, db01, db02]}")
    result = fleet("deploy", fleet_file, workdir, "--parallel", "8", "--json")
    assert result.returncode == 6, result.stderr
    document = json.loads(result.stdout)
    by_name = {d["name"]: d for d in document["databases"]}
    assert by_name["db01"]["status"] == "failed" and by_name["db01"]["gate"] == "migrate"
    assert "0001_items" in by_name["db01"]["error"]
    assert {by_name[n]["status"] for n in ("db00", "db02")} == {"deployed"}
    rest = [n for n in dsns if n not in canaries]
    assert {by_name[n]["status"] for n in rest} == {"not-run"}
    assert document["outcome"] == "halted" and "canary db01 failed" in document["halted"]
    # nothing was deployed beyond the canary wave: the databases say so themselves
    assert all(deployments(dsns[n]) == [] and version(dsns[n]) is None for n in rest)
    assert [r[1] for r in deployments(dsns["db01"])] == ["failed at migrate"]
    assert_summary_matches_history(document, dsns)
    assert "canary db01 failed" in result.stderr and "db01 (exit 6, at migrate)" in result.stderr
    reports = sorted((workdir / "reports").glob("*-fleet-t-dev.*"))
    assert [p.suffix for p in reports] == [".json", ".md"]
    assert "**halted** (exit 6)" in reports[1].read_text()


def test_a_killed_run_resumes_and_deploys_no_database_twice(pool, workdir):
    reset(pool)
    dsns = dict(pool)
    fleet_file = write_fleet(workdir, pool)
    held = [name for name, _ in pool[40:]]  # their deploy locks are ours until the kill
    command = [sys.executable, "-m", "invoke", "--search-root", str(ROOT), "fleet.deploy",
               "--fleet", fleet_file, "--parallel", "4"]
    environ = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    environ.update(env_for(workdir))
    with ExitStack() as locks:
        for name in held:
            conn = locks.enter_context(psycopg.connect(dsns[name], autocommit=True))
            locks.enter_context(db.advisory_lock(conn, "1s"))
        log = (workdir / "first.log").open("w")
        process = subprocess.Popen(command, cwd=ROOT, env=environ, stdout=log,
                                   stderr=subprocess.STDOUT)
        try:
            free = [name for name, _ in pool[:40]]
            # no deadline of our own: pytest-timeout ends a hung test
            while sum(bool(deployments(dsns[n])) for n in free) < len(free):
                assert process.poll() is None, (workdir / "first.log").read_text()
                time.sleep(0.2)
            process.send_signal(signal.SIGKILL)
            process.wait()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
    assert process.returncode == -signal.SIGKILL
    assert all(deployments(dsns[n]) == [] for n in held)  # killed mid-run, for certain
    status = fleet("status", fleet_file, workdir)
    assert status.returncode == 2
    assert f"attempt 1 stopped, pid {process.pid}" in status.stdout

    again = fleet("deploy", fleet_file, workdir, "--parallel", "4", "--json")
    assert again.returncode == 0, again.stderr
    document = json.loads(again.stdout)
    assert document["attempt"] == 2 and document["outcome"] == "complete"
    by_status = {}
    for entry in document["databases"]:
        by_status.setdefault(entry["status"], set()).add(entry["name"])
    assert by_status == {"already": {n for n, _ in pool[:40]}, "deployed": set(held)}
    for name, dsn in pool:  # each database: exactly one deploy, by this run
        rows = deployments(dsn)
        assert [(r[1], r[4]) for r in rows] == [("ok", document["run_id"])], (name, rows)
    assert_summary_matches_history(document, dsns)
    journal = json.loads(next((workdir / "state" / "fleets").glob("t-dev-*.json")).read_text())
    assert [a["outcome"] for a in journal["attempts"]] == ["running", "complete"]


def test_sigterm_lets_the_databases_under_way_finish_and_starts_no_other(pool, workdir):
    members = pool[:16]
    reset(members)
    dsns = dict(members)
    fleet_file = write_fleet(workdir, members, canary="{count: 0}")
    free, held = [n for n, _ in members[:8]], [n for n, _ in members[8:]]
    environ = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    environ.update(env_for(workdir))
    with ExitStack() as locks:
        for name in held:
            conn = locks.enter_context(psycopg.connect(dsns[name], autocommit=True))
            locks.enter_context(db.advisory_lock(conn, "1s"))
        process = subprocess.Popen(
            [sys.executable, "-m", "invoke", "--search-root", str(ROOT), "fleet.deploy",
             "--fleet", fleet_file, "--parallel", "2", "--json"],
            cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # the free ones done, then two of the held ones under way (waiting for our locks)
        while sum(bool(deployments(dsns[n])) for n in free) < len(free) or len(
                waiting_for_lock(dsns, held)) < 2:
            assert process.poll() is None, process.communicate()
            time.sleep(0.2)
        under_way = waiting_for_lock(dsns, held)
        process.send_signal(signal.SIGTERM)
    # our locks are gone: the two under way finish, nothing else starts
    _, err = process.communicate()
    assert process.returncode == 130, err
    deployed = sorted(n for n in held if deployments(dsns[n]))
    assert deployed == sorted(under_way)
    report = json.loads(next((workdir / "reports").glob("*.json")).read_text())
    assert report["outcome"] == "interrupted"
    assert {d["name"] for d in report["databases"] if d["status"] == "not-run"} == (
        set(held) - set(under_way))
    again = fleet("deploy", fleet_file, workdir, "--parallel", "4")
    assert again.returncode == 0, again.stderr
    assert all([r[1] for r in deployments(dsn)] == ["ok"] for dsn in dsns.values())


def waiting_for_lock(dsns, names) -> list[str]:
    """The databases among names with a fleet deploy session in them (it waits for the
    deploy lock the test holds)."""
    with psycopg.connect(dsns[names[0]]) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_stat_activity WHERE application_name LIKE 'shipshape deploy%'"
        ).fetchall()
    wanted = {psycopg.conninfo.conninfo_to_dict(dsns[n])["dbname"]: n for n in names}
    return [wanted[d] for (d,) in rows if d in wanted]


def test_four_shard_processes_deploy_every_database_exactly_once(pool, workdir):
    reset(pool)
    dsns = dict(pool)
    fleet_file = write_fleet(workdir, pool)
    environ = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    environ.update(env_for(workdir))
    processes = [subprocess.Popen(
        [sys.executable, "-m", "invoke", "--search-root", str(ROOT), "fleet.deploy",
         "--fleet", fleet_file, "--shard", f"{i}/4", "--parallel", "2", "--json"],
        cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(4)]
    outputs = [p.communicate() for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], [e for _, e in outputs]
    documents = [json.loads(out) for out, _ in outputs]
    names = [d["name"] for doc in documents for d in doc["databases"]]
    assert sorted(names) == sorted(dsns)  # every database in exactly one share
    assert {doc["shard"] for doc in documents} == {"0/4", "1/4", "2/4", "3/4"}
    assert len({doc["run_id"] for doc in documents}) == 1  # one run, four processes
    for document in documents:
        assert {d["status"] for d in document["databases"]} == {"deployed"}
        assert_summary_matches_history(document, dsns)
    for name, dsn in pool:
        assert [r[1] for r in deployments(dsn)] == ["ok"], name
    reports = list((workdir / "reports").glob("*-fleet-t-dev-shard-*.json"))
    assert len(reports) == 4


def test_two_processes_on_the_same_fleet_share_the_work_through_the_locks(pool, workdir):
    members = pool[:12]
    reset(members)
    fleet_file = write_fleet(workdir, members, canary="{count: 0}")
    environ = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    environ.update(env_for(workdir))
    processes = [subprocess.Popen(
        [sys.executable, "-m", "invoke", "--search-root", str(ROOT), "fleet.deploy",
         "--fleet", fleet_file, "--parallel", "3", "--json"],
        cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)]
    outputs = [p.communicate() for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [e for _, e in outputs]
    for name, dsn in members:
        assert [r[1] for r in deployments(dsn)] == ["ok"], name
    statuses = [{d["name"]: d["status"] for d in json.loads(out)["databases"]}
                for out, _ in outputs]
    for name, _ in members:  # one of the two deployed it, the other found it done
        assert sorted([statuses[0][name], statuses[1][name]]) == ["already", "deployed"], name


def test_a_run_keeps_the_lock_until_its_record_so_no_second_deploy_slips_in(
        fresh_dsn, make_target, workdir, cache_dir):
    """The record is what another process of the same run checks under the lock, so the
    lock is held until it is written: here a second deploy of the run tries while the
    first is between verify and record (in its app check) and cannot get in."""
    from shipshape.errors import Busy
    from shipshape.ops import pipeline

    tree = workdir / "sql"
    first = make_target(fresh_dsn, "dev", app_url="http://app.invalid")
    second = make_target(fresh_dsn, "dev", migration_lock_wait="0s")
    seen = {}

    def app_check(url):
        try:
            seen["second"] = pipeline.deploy(second, tree, run_id="t/dev/abc")
        except Busy as exc:
            seen["second"] = exc

    done = pipeline.deploy(first, tree, run_id="t/dev/abc", app_check=app_check)
    assert isinstance(seen["second"], Busy)
    rows = deployments(fresh_dsn)
    assert [(r[1], r[4]) for r in rows if r[1] == "ok"] == [("ok", "t/dev/abc")]
    assert done.deployment_id == next(r[0] for r in rows if r[1] == "ok")
    again = pipeline.deploy(second, tree, run_id="t/dev/abc")
    assert again.already == done.deployment_id


def test_fleet_doctor_aggregates_a_planted_finding(pool, workdir, tmp_path):
    members = pool[:8]
    reset(members)
    dsns = dict(members)
    fleet_file = write_fleet(workdir, members)
    assert fleet("deploy", fleet_file, workdir, "--parallel", "4").returncode == 0
    planted = ["db01", "db04", "db06"]
    for name in planted:
        with psycopg.connect(dsns[name], autocommit=True) as conn:
            conn.execute("CREATE INDEX by_hand ON items (price)")
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir()
    for path in (ROOT / "runbooks").glob("*.yaml"):
        if "fix" not in path.read_text():  # the small tree has no sql/fixes/
            (runbooks / path.name).write_text(path.read_text())
    result = fleet("doctor", fleet_file, workdir, "--parallel", "4",
                   "--runbooks-dir", str(runbooks))
    assert result.returncode == 2, result.stderr
    assert "DRIFT_UNEXPECTED  index by_hand: 3 of 8 database(s) (db01, db04, db06)" in result.stdout
    assert "5 healthy, 3 with problems" in result.stdout
    document = json.loads(fleet("doctor", fleet_file, workdir, "--json",
                                "--runbooks-dir", str(runbooks)).stdout)
    assert document["codes"] == {"DRIFT_UNEXPECTED": {"count": 3, "databases": planted}}
    (finding,) = document["findings"]
    assert (finding["object"], finding["count"], finding["of"]) == ("index by_hand", 3, 8)
    assert finding["runbook"] and finding["command"].startswith("invoke runbook.run ")
    assert document["unhealthy"] == planted


def test_an_unreachable_database_fails_alone_within_max_failures(pool, workdir):
    members = pool[:6]
    reset(members)
    dsns = dict(members)
    secret = "Fl33t-Secret-pw"
    unreachable = f"postgresql://deploy:{secret}@127.0.0.1:1/nowhere"
    listed = members[:3] + [("gone", unreachable)] + members[3:]
    fleet_file = write_fleet(workdir, listed, env_vars={"gone": "FLEET_GONE_URL",
                                                        "db05": "FLEET_DB05_URL"})
    env = {"FLEET_GONE_URL": unreachable, "FLEET_DB05_URL": dsns["db05"] + f" password={secret}"}
    result = fleet("deploy", fleet_file, workdir, "--parallel", "2", "--max-failures", "2",
                   env=env)
    assert result.returncode == 5, result.stderr
    assert "gone (exit 5, at preflight): Cannot connect" in result.stderr
    assert all([r[1] for r in deployments(dsn)] == ["ok"] for dsn in dsns.values())
    report = next((workdir / "reports").glob("*.md")).read_text()
    report_json = next((workdir / "reports").glob("*.json")).read_text()
    for text in (result.stdout, result.stderr, report, report_json):
        assert secret not in text
    assert "| gone | rest | ✗ failed |" in report

    # with the default max_failures (1) the same failure stops the run
    reset(members)
    again = fleet("deploy", fleet_file, workdir, "--parallel", "1", "--json", env=env)
    assert again.returncode == 5
    document = json.loads(again.stdout)
    statuses = [d["status"] for d in document["databases"]]
    assert statuses == ["deployed"] * 3 + ["failed"] + ["not-run"] * 3, statuses
    assert "max_failures 1" in document["halted"]


def test_a_database_of_another_env_is_refused_and_left_unchanged(pool, workdir):
    members = pool[:4]
    reset(members)
    dsns = dict(members)
    staging = write_fleet(workdir, [members[2]], name="staging.yaml")
    (workdir / "staging.yaml").write_text(
        (workdir / "staging.yaml").read_text().replace("env: dev", "env: staging"))
    assert fleet("deploy", staging, workdir).returncode == 0  # db02 is staging's now
    fleet_file = write_fleet(workdir, members, canary="{count: 0}")
    result = fleet("deploy", fleet_file, workdir, "--max-failures", "2", "--json")
    assert result.returncode == 3, result.stderr
    by_name = {d["name"]: d for d in json.loads(result.stdout)["databases"]}
    assert by_name["db02"]["status"] == "failed" and by_name["db02"]["exit_code"] == 3
    assert "stamped `staging`" in by_name["db02"]["error"]
    assert {by_name[n]["status"] for n in ("db00", "db01", "db03")} == {"deployed"}
    # its own deploy refused at the lock gate, as `invoke deploy --env dev` would be
    assert [(r[1], r[4].split("/")[1]) for r in deployments(dsns["db02"])] == [
        ("ok", "staging"), ("failed at lock", "dev")]


def test_an_unset_dsn_env_deploys_nothing(pool, workdir):
    members = pool[:3]
    reset(members)
    fleet_file = write_fleet(workdir, members, env_vars={"db01": "FLEET_UNSET_VARIABLE"})
    result = fleet("deploy", fleet_file, workdir)
    assert result.returncode == 5
    assert "FLEET_UNSET_VARIABLE (its dsn_env) is not set" in result.stderr
    assert f"{fleet_file}:" in result.stderr and "database db01" in result.stderr
    assert all(deployments(dsn) == [] for _, dsn in members)
    assert not (workdir / "reports").exists()


def test_a_malformed_fleet_file_names_its_line(pool, workdir):
    path = workdir / "broken.yaml"
    path.write_text("env: dev\ndatabases:\n  - {name: a, dsn_env: A_URL\n  - {name: b}\n")
    result = fleet("deploy", str(path), workdir)
    assert result.returncode == 5
    assert f"{path}:4: not valid YAML" in result.stderr and "Traceback" not in result.stderr


def test_dry_run_shows_the_waves_and_changes_nothing(pool, workdir):
    members = pool[:5]
    reset(members)
    fleet_file = write_fleet(workdir, members, canary="{count: 2}",
                             extra="waves: [{name: gold, labels: {tier: t1}}]")
    result = fleet("deploy", fleet_file, workdir, "--dry-run")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.index("wave 1: canary (2") < out.index("wave 2: gold (1") < out.index("wave 3: rest (2")
    assert out.count("2 migration(s): 0001_items, 0002_item_price") == 5
    assert all(deployments(dsn) == [] and version(dsn) is None for _, dsn in members)
    assert not (workdir / "reports").exists() and not (workdir / "state" / "fleets").exists()
    status = fleet("status", fleet_file, workdir, "--json")
    assert status.returncode == 2
    assert {d["state"] for d in json.loads(status.stdout)["databases"]} == {"behind"}
    assert fleet("deploy", fleet_file, workdir, "--parallel", "3").returncode == 0
    status = fleet("status", fleet_file, workdir, "--json")
    assert status.returncode == 0, status.stderr
    document = json.loads(status.stdout)
    assert all(d["state"] == "current" and d["this_run"] for d in document["databases"])
    again = fleet("deploy", fleet_file, workdir, "--dry-run")
    assert again.stdout.count("already deployed by this run") == 5


# --- expand and contract across a fleet (issue #12) ------------------------------------------

def applied(dsn) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return [v for (v,) in conn.execute(
            "SELECT version FROM shipshape.history WHERE success ORDER BY version")]


def test_an_expand_run_leaves_the_contract_and_a_contract_run_applies_it(pool, workdir):
    members = pool[:4]
    reset(members)
    phased_tree(workdir / "sql")
    fleet_file = write_fleet(workdir, members)
    expand = fleet("deploy", fleet_file, workdir, "--parallel", "2", "--json")  # dev: expand
    assert expand.returncode == 0, expand.stderr
    document = json.loads(expand.stdout)
    assert document["phase"] == "expand" and document["run_id"].endswith("/expand")
    assert {d["status"] for d in document["databases"]} == {"deployed"}
    for _, dsn in members:
        assert applied(dsn) == [1, 2, 3]  # 0004 pending on every member
    # status looks at the expand run by default: done everywhere, and what is left is the
    # contract phase, which the one next command names (not the expand run, done already)
    status = fleet("status", fleet_file, workdir, "--json")
    assert status.returncode == 2
    looked = json.loads(status.stdout)
    assert looked["run_id"] == document["run_id"] and looked["phase"] == "expand"
    assert all(d["this_run"] and d["pending_contract"] == 1 for d in looked["databases"])
    assert "contract migrations only" in status.stderr
    assert f"`invoke fleet.deploy --fleet {fleet_file} --phase contract`" in " ".join(
        status.stderr.split())
    status = fleet("status", fleet_file, workdir, "--phase", "contract", "--json")
    looked = json.loads(status.stdout)
    assert looked["run_id"].endswith("/contract") and looked["phase"] == "contract"
    assert not any(d["this_run"] for d in looked["databases"])

    contract = fleet("deploy", fleet_file, workdir, "--phase", "contract", "--parallel", "2",
                     "--json")
    assert contract.returncode == 0, contract.stderr
    second = json.loads(contract.stdout)
    # another run than the expand one: not `already` done
    assert second["run_id"].endswith("/contract") and second["run_id"] != document["run_id"]
    assert {d["status"] for d in second["databases"]} == {"deployed"}
    assert all("1 contract migration(s) applied" in d["detail"] for d in second["databases"])
    for _, dsn in members:
        assert applied(dsn) == [1, 2, 3, 4]
        assert [(r[1], r[4]) for r in deployments(dsn)] == [
            ("ok", document["run_id"]), ("ok", second["run_id"])]
    again = fleet("deploy", fleet_file, workdir, "--phase", "contract", "--json")
    assert {d["status"] for d in json.loads(again.stdout)["databases"]} == {"already"}
    status = fleet("status", fleet_file, workdir, "--phase", "contract")
    assert status.returncode == 0, status.stderr
    assert f"4 deployed by run {second['run_id']}" in " ".join(status.stdout.split())


def test_a_contract_run_is_refused_while_an_old_release_is_registered(pool, workdir):
    members = pool[:3]
    reset(members)
    phased_tree(workdir / "sql")
    fleet_file = write_fleet(workdir, members)
    assert fleet("deploy", fleet_file, workdir, "--phase", "expand").returncode == 0
    dry = fleet("deploy", fleet_file, workdir, "--phase", "contract", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("contract phase: 1 migration(s): 0004_price_not_negative") == 3
    canary = members[0][1]
    with psycopg.connect(canary) as conn:  # a replica of release 0003 still heartbeats
        conn.execute("INSERT INTO shipshape.app_instances (instance, release, host) "
                     "VALUES ('api-old-1', 3, 'node-a')")
    result = fleet("deploy", fleet_file, workdir, "--phase", "contract", "--json")
    assert result.returncode == 3, result.stderr
    by_name = {d["name"]: d for d in json.loads(result.stdout)["databases"]}
    refused = by_name[members[0][0]]
    assert refused["status"] == "failed" and refused["gate"] == "contract"
    assert "api-old-1" in refused["error"] and "release 0003" in refused["error"]
    # the one command to run next is the fleet's, never one database's `invoke deploy`
    error = " ".join(refused["error"].split())
    assert f"`invoke fleet.deploy --fleet {fleet_file} --phase contract`" in error
    assert "invoke deploy --env" not in error
    # the canary's refusal stops the run: no database got the contract migration
    assert {by_name[n]["status"] for n, _ in members[1:]} == {"not-run"}
    for _, dsn in members:
        assert applied(dsn) == [1, 2, 3]
    assert "run the same command again" in result.stderr
    with psycopg.connect(canary) as conn:  # the old replica stopped
        conn.execute("DELETE FROM shipshape.app_instances")
    assert fleet("deploy", fleet_file, workdir, "--phase", "contract").returncode == 0
    assert all(applied(dsn) == [1, 2, 3, 4] for _, dsn in members)


def test_a_bad_phase_is_exit_5_before_any_database_is_touched(pool, workdir):
    members = pool[:2]
    reset(members)
    fleet_file = write_fleet(workdir, members)
    result = fleet("deploy", fleet_file, workdir, "--phase", "shrink")
    assert result.returncode == 5
    assert "expected expand, contract or all" in result.stderr and "Traceback" not in result.stderr
    assert all(deployments(dsn) == [] for _, dsn in members)


def test_fleet_deploy_help_explains_phase():
    result = run_invoke("--help", "fleet.deploy")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "--phase=STRING" in text
    assert "expand, contract (refused, exit 3, while a replica of an older release is alive)" in text
    assert "Default: the env's deploy_phase" in text
