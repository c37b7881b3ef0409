"""Optional: a database fleet deployed by an Indexed Job, one pod per shard.

Set `shipshape:fleet_file` (a fleet file, README "Database fleets") and the stack renders
a batch/v1 Job with completionMode Indexed: `fleet_shards` pods, pod i running
`invoke fleet.deploy --fleet <file> --shard i/<fleet_shards> --parallel <fleet_parallel>`
from the tools image (the gate's: shipshape and the SQL tree, so its digest says which
migrations the fleet gets). The completion index is the shard; there is no coordinator:
each database's own deploy lock and its recorded run do the rest, so a retried pod
continues its shard and deploys no database twice.

- The fleet file's text goes into an immutable, auto-named ConfigMap mounted read-only;
  the DSNs its `dsn_env` entries name come from the stack secret `shipshape:fleet_dsns`
  (a JSON object, variable -> DSN) through an immutable, auto-named Secret and `envFrom`,
  never as a value in the manifest. A changed file, DSN or image is a new template, hence
  a new Job (replace_on_changes): the same tree again is a no-op on every database
  (`already`), a new tree a new run.
- The Job depends on the migration gate: the tree has passed migrate -> seed -> verify on
  the stack's own database before any tenant gets it. pulumi-kubernetes awaits the Job
  (never skipAwait): a fleet that fails fails `pulumi up`.
- podFailurePolicy: exit 2, 3, 5 or 6 (problems, refused, bad input, SQL) fails the Job at
  once, since a retry fails the same way; exit 4 (busy), 130 (SIGTERM: an eviction) and a
  crash are retried, up to backoffLimit, and resume the shard.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.components.kubernetes.common import (
    container_security,
    labels,
    pod_security,
    resources,
    tmp_volume,
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


def command(shards: int, parallel: int) -> list[str]:
    """What pod i runs; Kubernetes expands $(SHARD_INDEX) to its completion index."""
    return ["invoke", "fleet.deploy", "--fleet", FLEET_PATH, "--sql-dir", SQL_DIR,
            "--shard", f"$({SHARD_ENV})/{shards}", "--parallel", str(parallel)]


@dataclass
class FleetJobArgs:
    cfg: StackConfig
    namespace: pulumi.Input[str]
    image: pulumi.Input[str]            # the tools image the gate runs
    gate: pulumi.Resource               # the migration gate Job: the tree passed it first


class FleetJob(pulumi.ComponentResource):
    resource: k8s.batch.v1.Job

    def __init__(self, name: str, args: FleetJobArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("shipshape:infra:FleetJob", name, None, opts)
        cfg = args.cfg
        fleet_labels = labels(cfg, "shipshape-fleet", "fleet")
        text = cfg.fleet_file.read_text()
        variables = sorted(cfg.fleet_variables)
        files = k8s.core.v1.ConfigMap(
            f"{name}-file",
            metadata={"namespace": args.namespace, "labels": fleet_labels},
            immutable=True,
            data={"fleet.yaml": text},
            opts=pulumi.ResourceOptions(parent=self))
        env_from = []
        if variables:
            dsns = pulumi.Output.secret(cfg.fleet_dsns).apply(
                lambda found: _dsns(found, variables))
            credentials = k8s.core.v1.Secret(
                f"{name}-dsns",
                metadata={"namespace": args.namespace, "labels": fleet_labels},
                type="Opaque",
                immutable=True,
                string_data=dsns,
                opts=pulumi.ResourceOptions(parent=self))
            env_from = [{"secretRef": {"name": credentials.metadata.name}}]
        tmp, tmp_mount = tmp_volume()
        self.resource = k8s.batch.v1.Job(
            name,
            metadata={"namespace": args.namespace, "labels": fleet_labels,
                      "annotations": {"pulumi.com/replaceUnready": "true"}},
            spec={
                "completionMode": "Indexed",
                "completions": cfg.fleet_shards,
                "parallelism": cfg.fleet_shards,
                "backoffLimit": cfg.fleet_shards,
                "activeDeadlineSeconds": DEADLINE_SECONDS,
                "podFailurePolicy": {"rules": [{
                    "action": "FailJob",
                    "onExitCodes": {"containerName": CONTAINER, "operator": "In",
                                    "values": FAIL_AT_ONCE}}]},
                "template": {
                    "metadata": {"labels": fleet_labels},
                    "spec": {
                        "restartPolicy": "Never",
                        "automountServiceAccountToken": False,
                        "securityContext": pod_security(),
                        **({"imagePullSecrets": [{"name": cfg.image_pull_secret}]}
                           if cfg.image_pull_secret else {}),
                        "containers": [{
                            "name": CONTAINER,
                            "image": args.image,
                            "command": command(cfg.fleet_shards, cfg.fleet_parallel),
                            "env": [
                                {"name": SHARD_ENV,
                                 "valueFrom": {"fieldRef": {"fieldPath": COMPLETION_INDEX}}},
                                {"name": "SHIPSHAPE_STATE_DIR", "value": "/tmp/shipshape"},
                                {"name": "SHIPSHAPE_REPORTS_DIR", "value": "/tmp/reports"},
                            ],
                            "envFrom": env_from,
                            "resources": resources(FLEET_RESOURCES),
                            "securityContext": container_security(),
                            "volumeMounts": [tmp_mount, {"name": "fleet", "mountPath": FLEET_DIR,
                                                         "readOnly": True}],
                        }],
                        "volumes": [tmp, {"name": "fleet",
                                          "configMap": {"name": files.metadata.name}}],
                    },
                },
            },
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[args.gate],
                replace_on_changes=["spec"],
                delete_before_replace=False,
                custom_timeouts=pulumi.CustomTimeouts(create=f"{DEADLINE_SECONDS // 60 + 5}m",
                                                      update=f"{DEADLINE_SECONDS // 60 + 5}m")))
        self.register_outputs({})


def _dsns(found, variables: list[str]) -> dict:
    """The secret's DSNs for exactly the variables the fleet file names (infra/config.py
    has checked that each is there)."""
    import json

    values = json.loads(found) if isinstance(found, str) else dict(found or {})
    return {v: values[v] for v in variables}
