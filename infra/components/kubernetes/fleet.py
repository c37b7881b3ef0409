"""Optional: a database fleet deployed by two Indexed Jobs, one pod per shard each.

Set `shipshape:fleet_file` (a fleet file, README "Database fleets") and the stack renders
two batch/v1 Jobs with completionMode Indexed, both from the tools image (the gate's:
shipshape and the SQL tree, so its digest says which migrations the fleet gets), with the
same `fleet_shards` pods, pod i running
`invoke fleet.deploy --fleet <file> --shard i/<fleet_shards> --parallel <fleet_parallel>
--phase <phase>`: `fleet` the expand phase, `fleet-contract` the contract phase. The
completion index is the shard; there is no coordinator: each database's own deploy lock
and its recorded run do the rest, so a retried pod continues its shard and deploys no
database twice.

- The fleet file's text goes into an immutable, auto-named ConfigMap mounted read-only;
  the DSNs its `dsn_env` entries name come from the stack secret `shipshape:fleet_dsns`
  (a JSON object, variable -> DSN) through an immutable, auto-named Secret and `envFrom`,
  never as a value in the manifest. Both Jobs mount the same two. A changed file, DSN or
  image is a new template, hence new Jobs (replace_on_changes): the same tree again is a
  no-op on every database (`already`), a new tree a new run.
- `fleet` (expand, explicitly: the profile's default could be `all`) depends on the
  migration gate: the tree has passed migrate -> seed -> verify on the stack's own
  database before any tenant gets it. Its podFailurePolicy: exit 2, 3, 5 or 6 (problems,
  refused, bad input, SQL) fails the Job at once, since a retry fails the same way; exit 4
  (busy), 130 (SIGTERM: an eviction) and a crash are retried, up to backoffLimit, and
  resume the shard.
- `fleet-contract` is the fleet's ContractGate (gate.py): it depends on the app
  Deployment, whose rollout pulumi-kubernetes awaits, and on `fleet`, so no member
  contracts before every replica runs the new release and every member has expanded. As
  the contract gate, it retries only exit 3 (a member where a replica of an older release
  is still registered; fleet.deploy exits with its first failed database's code) and its
  template carries the app image: a new release re-runs it after its rollout.
- pulumi-kubernetes awaits both (never skipAwait): a fleet that fails fails `pulumi up`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.components.kubernetes.common import (
    container_security,
    job_metadata,
    job_options,
    job_pod,
    labels,
    resources,
    tmp_volume,
)
from infra.components.kubernetes.gate import (
    APP_RELEASE_ANNOTATION,
    CONTRACT_RETRIES,
    failure_policy,
    retry_only_refused,
)
from infra.config import Resources, StackConfig

CONTAINER = "fleet"
FLEET_DIR = "/srv/fleet"
FLEET_PATH = f"{FLEET_DIR}/fleet.yaml"
SQL_DIR = "/srv/sql"               # the tree baked into the tools image (infra/gate.Dockerfile)
SHARD_ENV = "SHARD_INDEX"
COMPLETION_INDEX = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
DEADLINE_SECONDS = 6 * 3600
FAIL_AT_ONCE = [2, 3, 5, 6]        # a retry would fail the same way
FLEET_RESOURCES = Resources(cpu_request="100m", cpu_limit="1", memory_request="256Mi",
                            memory_limit="1Gi")


def command(shards: int, parallel: int, phase: str) -> list[str]:
    """What pod i runs; Kubernetes expands $(SHARD_INDEX) to its completion index. The
    phase is explicit, whatever the profile's default: expand must never contract."""
    return ["invoke", "fleet.deploy", "--fleet", FLEET_PATH, "--sql-dir", SQL_DIR,
            "--shard", f"$({SHARD_ENV})/{shards}", "--parallel", str(parallel),
            "--phase", phase]


@dataclass
class FleetJobArgs:
    cfg: StackConfig
    namespace: pulumi.Input[str]
    image: pulumi.Input[str]            # the tools image the gate runs
    gate: pulumi.Resource               # the migration gate Job: the tree passed it first
    deployment: pulumi.Resource         # the app Deployment, awaited to its rollout's end
    app_image: pulumi.Input[str]        # the release that rolled: a new one re-runs contract


class FleetJob(pulumi.ComponentResource):
    resource: k8s.batch.v1.Job          # `fleet`: the expand phase, after the gate
    contract: k8s.batch.v1.Job          # `fleet-contract`: after the rollout and `fleet`

    def __init__(self, name: str, args: FleetJobArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("shipshape:infra:FleetJob", name, None, opts)
        cfg = args.cfg
        fleet_labels = labels(cfg, "shipshape-fleet", "fleet")
        files = k8s.core.v1.ConfigMap(
            f"{name}-file",
            metadata={"namespace": args.namespace, "labels": fleet_labels},
            immutable=True,
            data={"fleet.yaml": cfg.fleet_file.read_text()},
            opts=pulumi.ResourceOptions(parent=self))
        shards = _Shards(cfg, args.image, files.metadata.name,
                         self._credentials(name, cfg, args.namespace, fleet_labels))
        self.resource = k8s.batch.v1.Job(
            name,
            metadata=job_metadata(args.namespace, fleet_labels),
            spec=shards.job("expand", fleet_labels, backoff_limit=cfg.fleet_shards,
                            failure_policy=failure_policy({
                                "action": "FailJob",
                                "onExitCodes": {"containerName": CONTAINER, "operator": "In",
                                                "values": FAIL_AT_ONCE}})),
            opts=job_options(self, [args.gate], DEADLINE_SECONDS))
        contract_labels = labels(cfg, "shipshape-fleet", "fleet-contract")
        self.contract = k8s.batch.v1.Job(
            f"{name}-contract",
            metadata=job_metadata(args.namespace, contract_labels),
            # backoffLimit counts the failures of all shards: CONTRACT_RETRIES each.
            spec=shards.job("contract", contract_labels,
                            backoff_limit=CONTRACT_RETRIES * cfg.fleet_shards,
                            failure_policy=retry_only_refused(CONTAINER),
                            annotations={APP_RELEASE_ANNOTATION: args.app_image}),
            opts=job_options(self, [args.deployment, self.resource], DEADLINE_SECONDS))
        self.register_outputs({})

    def _credentials(self, name: str, cfg: StackConfig, namespace: pulumi.Input[str],
                     fleet_labels: dict) -> list[dict]:
        """envFrom: an immutable Secret of the DSNs the fleet file's dsn_env names."""
        variables = sorted(cfg.fleet_variables)
        if not variables:
            return []
        dsns = pulumi.Output.secret(cfg.fleet_dsns).apply(lambda found: _dsns(found, variables))
        credentials = k8s.core.v1.Secret(
            f"{name}-dsns",
            metadata={"namespace": namespace, "labels": fleet_labels},
            type="Opaque",
            immutable=True,
            string_data=dsns,
            opts=pulumi.ResourceOptions(parent=self))
        return [{"secretRef": {"name": credentials.metadata.name}}]


@dataclass
class _Shards:
    """What both Jobs share: the tools image, the fleet file, the DSNs, the sharding."""

    cfg: StackConfig
    image: pulumi.Input[str]
    files: pulumi.Input[str]            # the ConfigMap's name
    env_from: list[dict]

    def job(self, phase: str, pod_labels: dict, *, backoff_limit: int, failure_policy: dict,
            annotations: dict | None = None) -> dict:
        """The Indexed Job's spec: one pod per shard running fleet.deploy of `phase`."""
        cfg = self.cfg
        tmp, tmp_mount = tmp_volume()
        container = {
            "name": CONTAINER,
            "image": self.image,
            "command": command(cfg.fleet_shards, cfg.fleet_parallel, phase),
            "env": [
                {"name": SHARD_ENV, "valueFrom": {"fieldRef": {"fieldPath": COMPLETION_INDEX}}},
                {"name": "SHIPSHAPE_STATE_DIR", "value": "/tmp/shipshape"},
                {"name": "SHIPSHAPE_REPORTS_DIR", "value": "/tmp/reports"},
            ],
            "envFrom": self.env_from,
            "resources": resources(FLEET_RESOURCES),
            "securityContext": container_security(),
            "volumeMounts": [tmp_mount, {"name": "fleet", "mountPath": FLEET_DIR, "readOnly": True}],
        }
        fleet_file = {"name": "fleet", "configMap": {"name": self.files}}
        return {
            "completionMode": "Indexed",
            "completions": cfg.fleet_shards,
            "parallelism": cfg.fleet_shards,
            "backoffLimit": backoff_limit,
            "activeDeadlineSeconds": DEADLINE_SECONDS,
            "podFailurePolicy": failure_policy,
            "template": job_pod(cfg, pod_labels, [container], [tmp, fleet_file],
                                annotations=annotations),
        }


def _dsns(found, variables: list[str]) -> dict:
    """The secret's DSNs for exactly the variables the fleet file names (infra/config.py
    has checked that each is there)."""
    import json

    values = json.loads(found) if isinstance(found, str) else dict(found or {})
    return {v: values[v] for v in variables}
