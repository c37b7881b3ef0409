"""Run the Pulumi program (infra/__main__.py) under pulumi.runtime.set_mocks, for one stack
file, and record what it registered: every resource with its inputs AS SENT (secrets still
marked), its dependencies and options, and the stack outputs.

The config comes from the real Pulumi.<env>.yaml, turned into what the CLI hands a program
(strings; lists and maps as JSON), plus the secrets a CI job would set with
`pulumi config set --secret` (the stack files only document them).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import runpy
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import yaml
from google.protobuf import json_format
from pulumi.runtime import mocks, settings
from pulumi.runtime.stack import run_in_stack
from pulumi.runtime.sync_await import _sync_await

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = ROOT / "infra" / "__main__.py"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
SIG_KEY = "4dabf18193072939515e22adb298388d"

# What a CI job sets with `pulumi config set --secret`: distinctive, so a leak is findable.
TEST_SECRETS = {
    "shipshape:db_superuser_password": "su-Pa55-0f2c9e71b4",
    "shipshape:app_db_password": "app-Pa55-6d3a18c0f5",
    "shipshape:huggingface_api_key": "hf_TestKey_8b1e4f2a9c",
}
# What a promotion sets outside dev (`pulumi config set shipshape:app_image <dev's digest>`):
# the stack files of staging and prod leave it to that commit.
TEST_APP_IMAGE = "registry.example.com/shipshape/avatar-creator@sha256:" + "a1" * 32
TEST_GATE_IMAGE = "registry.example.com/shipshape/shipshape-gate@sha256:" + "b2" * 32


def stack_config(env: str, *, drop: tuple = (), set_: dict | None = None,
                 secrets: dict | None = None, plaintext: tuple = (),
                 file: str | None = None) -> tuple[dict, list]:
    """(config, secret_keys) for stack `env`, as the CLI would hand them to the program:
    its file (Pulumi.<env>.yaml, or the stack file named `file`), the secrets a CI job sets,
    and, outside dev, the promoted image digests when the file does not name them."""
    document = yaml.safe_load((ROOT / (file or f"Pulumi.{env}.yaml")).read_text())
    config = {}
    for key, value in (document.get("config") or {}).items():
        if isinstance(value, dict) and "secure" in value:
            continue
        config[key] = _cli_string(value)
    config.update({k: _cli_string(v) for k, v in (set_ or {}).items()})
    if config.get("shipshape:profile", env) != "dev":
        config.setdefault("shipshape:app_image", TEST_APP_IMAGE)
        if config.get("shipshape:platform") == "kubernetes":
            config.setdefault("shipshape:gate_image", TEST_GATE_IMAGE)
    secrets = dict(TEST_SECRETS if secrets is None else secrets)
    config.update(secrets)
    for key in drop:
        config.pop(key, None)
    secret_keys = [k for k in secrets if k in config and k not in plaintext]
    return config, secret_keys


def _cli_string(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


@dataclass
class Registered:
    type: str
    name: str
    urn: str
    parent: str
    inputs: dict           # plain values, secrets unwrapped
    wire: dict             # as sent to the engine: secrets wrapped in their signature
    outputs: dict          # what the (mocked) provider returned, secrets unwrapped
    dependencies: list
    additional_secret_outputs: list
    protect: bool
    replace_on_changes: list
    delete_before_replace: bool
    custom_timeouts: dict
    provider: str


@dataclass
class Recorded:
    resources: list = field(default_factory=list)
    outputs_wire: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)

    def of_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> Registered:
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        assert len(found) == 1, f"expected one {type_} {name or ''}, got {[r.name for r in found]}"
        return found[0]

    def by_urn(self, urn: str) -> Registered:
        return next(r for r in self.resources if r.urn == urn)


class _Mocks(pulumi.runtime.Mocks):
    """Provider outputs: the inputs back, plus what each docker and kubernetes resource
    computes. `generation` stands for a re-creation: the uids Kubernetes gives differ."""

    def __init__(self, generation: int = 0):
        super().__init__()
        self.generation = generation

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        state = dict(args.inputs)
        if args.typ.startswith("kubernetes:"):
            # What the API server fills in: an auto-name (Pulumi's suffix) and a uid.
            metadata = dict(state.get("metadata") or {})
            metadata.setdefault("name", f"{args.name}-{hashlib.sha256(args.name.encode()).hexdigest()[:8]}")
            metadata["uid"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{args.typ}/{args.name}/{self.generation}"))
            state["metadata"] = metadata
        if args.typ == "docker:index/remoteImage:RemoteImage":
            # The engine's id of the pulled image: the same digest gives the same id.
            pulled = hashlib.sha256(str(args.inputs.get("name")).encode()).hexdigest()[:12]
            state["imageId"] = f"sha256:{args.name}-{pulled}-mock"
            state["repoDigest"] = f"{args.inputs.get('name')}@sha256:mock"
        elif args.typ == "docker:index/image:Image":
            state["repoDigest"] = f"{args.inputs.get('imageName')}@sha256:built-mock"
        elif args.typ == "docker:index/container:Container":
            # What Docker does with a port published without a host port: picks one.
            state["ports"] = [{**port, "external": port.get("external") or 49153 + number}
                              for number, port in enumerate(state.get("ports") or [])]
        elif args.typ.startswith("pulumi-python:dynamic/shipshape:MigrationGate"):
            # What the real provider returns (shipshape.pulumi_gate.gate.provider_outputs), for a run
            # that applied every migration: no inputs copied but the watched ones.
            from shipshape.pulumi_gate import gate

            inputs = unwrap(args.inputs)
            result = gate.GateResult(env=inputs["env"], app_login=True,
                                     schema_version=len(inputs["checksums"]["migrations"]))
            state = {**gate.provider_outputs(inputs, result),
                     "__provider": args.inputs["__provider"]}
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}, None


class _Monitor(mocks.MockMonitor):
    def __init__(self, mocks_: _Mocks, recorded: Recorded):
        super().__init__(mocks_)
        self.recorded = recorded

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.recorded.resources.append(Registered(
                type=request.type, name=request.name, urn=response.urn, parent=request.parent,
                inputs=unwrap(pulumi.runtime.rpc.deserialize_properties(request.object)),
                wire=json_format.MessageToDict(request.object),
                outputs=unwrap(pulumi.runtime.rpc.deserialize_properties(response.object)),
                dependencies=list(request.dependencies),
                additional_secret_outputs=list(request.additionalSecretOutputs),
                protect=bool(request.protect),
                replace_on_changes=list(request.replaceOnChanges),
                delete_before_replace=bool(request.deleteBeforeReplace),
                custom_timeouts=json_format.MessageToDict(request.customTimeouts),
                provider=request.provider,
            ))
        return response

    def RegisterResourceOutputs(self, request):
        if request.urn.split("::")[-2].endswith("pulumi:pulumi:Stack"):
            self.recorded.outputs_wire = json_format.MessageToDict(request.outputs)
            self.recorded.outputs = unwrap(pulumi.runtime.rpc.deserialize_properties(request.outputs))
        return super().RegisterResourceOutputs(request)


def run_stack(env: str, config: dict | None = None, secret_keys: list | None = None,
              *, preview: bool = False, generation: int = 0) -> Recorded:
    """Run infra/__main__.py as stack `env` under mocks; raises what the program raises."""
    if config is None:
        config, secret_keys = stack_config(env)
    recorded = Recorded()
    mocks_ = _Mocks(generation)
    settings.ROOT.set(None)
    # Pulumi's mocks run on the thread's current event loop; a test elsewhere that used
    # asyncio.run() leaves the main thread with none, so give each stack run its own.
    asyncio.set_event_loop(asyncio.new_event_loop())
    pulumi.runtime.set_mocks(mocks_, project="shipshape", stack=env, preview=preview,
                             monitor=_Monitor(mocks_, recorded))
    pulumi.runtime.set_all_config(config, secret_keys or [])
    settings.ROOT.set(None)  # run_in_stack registers a fresh stack that carries the outputs
    _sync_await(run_in_stack(lambda: runpy.run_path(str(PROGRAM), run_name="__main__")))
    return recorded


def unwrap(value):
    """Plain values: every secret wrapper replaced by its value."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return unwrap(value.get("value"))
        return {key: unwrap(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap(item) for item in value]
    return value


def plaintext_leaks(wire, secrets) -> list[str]:
    """Paths of string values outside a secret wrapper that contain one of the secrets."""
    leaks: list[str] = []

    def walk(value, path):
        if isinstance(value, dict):
            if value.get(SIG_KEY) == SECRET_SIG:
                return  # a secret: encrypted in the state, masked in output
            for key, item in value.items():
                walk(item, f"{path}.{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")
        elif isinstance(value, str) and any(secret in value for secret in secrets):
            leaks.append(path)

    walk(wire, "")
    return leaks


def is_secret(wire_value) -> bool:
    return isinstance(wire_value, dict) and wire_value.get(SIG_KEY) == SECRET_SIG
