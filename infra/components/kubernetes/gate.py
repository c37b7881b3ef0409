"""The kubernetes platform's migration gate: a Job that runs shipshape's own deploy,
`invoke deploy --env <stack>` (preflight -> lock -> migrate -> seed -> verify -> record),
inside the cluster, where the database is reachable, from the tools image
(infra/gate.Dockerfile: shipshape, its tasks and the SQL tree; built in dev, promoted by
digest like the app image, or shipshape:gate_image). The app image cannot run it: app/
imports nothing from shipshape, on purpose.

The Job's pod runs two steps in order: the init container `deploy`, then `app-login`
(`python -m shipshape.pulumi_gate.gate app-login`), which gives the app role LOGIN and its password
(as a SCRAM verifier) only once deploy passed, exactly as the docker platform's gate does.
A failed step fails the pod, and with backoffLimit spent, the Job.

Why this fails `pulumi up`, and why the app waits (pulumi-kubernetes' documented await
logic for batch/v1 Job): the Job counts as created only when its Complete condition is
True, and fails the update as soon as its Failed condition is True (default timeout 10
minutes, raised here with customTimeouts to cover activeDeadlineSeconds). The Deployment
depends_on the Job, so no pod of a new release is created before migrate -> seed ->
verify passed, and a failed gate leaves the running release as it was. The annotation
`pulumi.com/skipAwait` would turn that waiting off: it must never be set here (the policy
pack refuses it on a gate Job). `pulumi.com/replaceUnready: "true"` makes the next update
replace a Job that failed instead of waiting again on the failed one.

When the gate re-runs: a Job's pod template is immutable, and replace_on_changes=["spec"]
makes any change of it a new Job (created before the old one is deleted: auto-named). The
template holds what the gate's result depends on: the tools image digest (which holds the
SQL tree), the env's settings (as SHIPSHAPE_<SETTING> variables, so the image's own stack
files, if any, play no part), the Secret's name (a new password or DSN is a new Secret),
and the database's identity as an annotation (a recreated Cluster re-runs it). An
unchanged stack keeps its completed Job and runs nothing.

No ttlSecondsAfterFinished: Kubernetes would delete the completed Job, the next refresh
would find it gone, and the next update would run the gate again for no reason.

Two gates per stack (issue #12), as on the docker platform: `migration-gate` runs
`deploy --phase expand` before the Deployment; `contract-gate` (ContractGate) runs
`deploy --phase contract` after it. The contract Job depends_on the Deployment, and
pulumi-kubernetes awaits a Deployment's rollout by default (its documented await logic:
a ReplicaSet of the current revision, Available True, Progressing True with reason
NewReplicaSetAvailable; skipAwait, which the policy pack refuses, would turn it off), so
no contract migration runs before every replica runs the new release. Its template
carries the app image as an annotation: every new app release re-runs it after its
rollout, and so does a new tools image (new contract migrations). The rollout's end does
not wait for the old pods to finish terminating, and a terminating pod's heartbeat row
stays until it leaves (or ages out after app_heartbeat_ttl): `deploy --phase contract`
then refuses with exit 3, and the Job's podFailurePolicy retries exactly that exit,
backoffLimit times with Kubernetes' growing back-off (10s, 20s, 40s, ...: longer than the
pods' grace period plus the TTL), while any other failure fails the Job, and the update,
at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.components import images
from infra.components.kubernetes.common import (
    container_security,
    job_metadata,
    job_options,
    job_pod,
    labels,
    resources,
    secret,
    secret_env,
    tmp_volume,
)
from infra.config import Resources, StackConfig

DEADLINE_SECONDS = 1800   # statement_timeout is 15min per migration; a deploy is a few
# The contract Job: retries of exit 3 (an old replica still registered) add up to
# 10+20+40+80+160 s = 5 min of back-off, beyond a pod's 30 s grace period and the 30 s TTL.
CONTRACT_RETRIES = 5
REFUSED_EXIT = 3
APP_RELEASE_ANNOTATION = "shipshape.io/app-image"
GATE_RESOURCES = Resources(cpu_request="100m", cpu_limit="1", memory_request="256Mi", memory_limit="1Gi")
DATABASE_ID_ANNOTATION = "shipshape.io/database-id"
STATE_DIR = "/tmp/shipshape"   # verify's shadow-snapshot cache: on the writable /tmp


def settings_env(cfg: StackConfig, phase: str = "expand") -> list[dict]:
    """The env's settings as SHIPSHAPE_<SETTING> variables: highest precedence in the tasks;
    and its profile as SHIPSHAPE_PROFILE, since the image holds no stack file to declare it.
    deploy_phase is the gate's own phase, whatever the stack file's default: the expand
    gate must never contract before the app rolls."""
    context = cfg.env.context()
    context.pop("name", None)
    context["app_url"] = ""  # the app starts after the gate; deploy's app gate is skipped
    context["deploy_phase"] = phase
    out = []
    for key, value in sorted(context.items()):
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            value = ",".join(value)
        out.append({"name": f"SHIPSHAPE_{key.upper()}", "value": str(value)})
    return out


@dataclass
class MigrationGateArgs:
    cfg: StackConfig
    namespace: pulumi.Input[str]
    admin_dsn: pulumi.Input[str]          # secret
    database: pulumi.Resource | None      # the Cluster the gate waits for (None: external)
    database_id: pulumi.Input[str]        # its identity: a new one re-runs the gate


def _step(name: str, image: pulumi.Input[str], command: list[str], env: list[dict],
          mount: dict) -> dict:
    """One container of a gate pod: the tools image, the conventions the policy checks."""
    return {
        "name": name,
        "image": image,
        "command": command,
        "env": env,
        "resources": resources(GATE_RESOURCES),
        "securityContext": container_security(),
        "volumeMounts": [mount],
    }


# A pod the cluster itself ends (a node drained, preemption, an API eviction) carries the
# DisruptionTarget condition; its SIGTERM ends the run with its transaction rolled back
# (exit 130), which says nothing about the Job's work. Ignored: the Job starts the pod
# again without counting a failure. First, because the first rule that matches decides.
IGNORE_DISRUPTION = {"action": "Ignore",
                     "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}


def failure_policy(*rules: dict) -> dict:
    """A Job's podFailurePolicy: an eviction ignored, then rules. Needs restartPolicy
    Never (as every pod here)."""
    return {"rules": [IGNORE_DISRUPTION, *rules]}


def retry_only_refused(container: str) -> dict:
    """A contract Job's podFailurePolicy: only the refusal while an old pod is still
    leaving (exit 3) is worth a retry; any other exit of `container` fails the Job, hence
    the update, at once (an eviction is no exit of the run: it is ignored)."""
    return failure_policy({
        "action": "FailJob",
        "onExitCodes": {"containerName": container, "operator": "NotIn",
                        "values": [REFUSED_EXIT]}})


def _common_env(cfg: StackConfig, phase: str, secret_name: pulumi.Input[str]) -> list[dict]:
    return settings_env(cfg, phase) + [
        {"name": "SHIPSHAPE_STATE_DIR", "value": STATE_DIR},
        secret_env("DATABASE_URL", secret_name),
    ]


class MigrationGate(pulumi.ComponentResource):
    resource: k8s.batch.v1.Job
    image: pulumi.Output[str]          # what its containers run (a fleet Job runs it too)
    image_digest: pulumi.Output[str]

    def __init__(self, name: str, args: MigrationGateArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("shipshape:infra:MigrationGate", name, None, opts)
        cfg = args.cfg
        built = images.image(f"{name}-image", images.gate_source(cfg),
                             dockerfile=cfg.project_dir / "infra" / "gate.Dockerfile",
                             repository="shipshape-gate", tag=cfg.stack, parent=self)
        self.image, self.image_digest = built.ref, built.digest
        credentials = secret(f"{name}-credentials", cfg, args.namespace,
                             {"DATABASE_URL": args.admin_dsn, "APP_DB_PASSWORD": cfg.app_db_password},
                             component="migration-gate", parent=self)
        secret_name = credentials.metadata.name
        tmp, tmp_mount = tmp_volume()
        env = _common_env(cfg, "expand", secret_name)
        deploy = _step("deploy", built.ref,
                       ["invoke", "deploy", "--env", cfg.stack, "--phase", "expand"], env, tmp_mount)
        login = _step("app-login", built.ref, ["python", "-m", "shipshape.pulumi_gate.gate", "app-login"],
                      env + [secret_env("APP_DB_PASSWORD", secret_name)], tmp_mount)
        pod_labels = labels(cfg, "shipshape-gate", "migration-gate")
        self.resource = k8s.batch.v1.Job(
            name,
            metadata=job_metadata(args.namespace, pod_labels),
            spec={
                # One retry for a network blip; a failing verify fails the same way twice.
                "backoffLimit": 1,
                "activeDeadlineSeconds": DEADLINE_SECONDS,
                "template": job_pod(cfg, pod_labels, [login], [tmp],
                                    annotations={DATABASE_ID_ANNOTATION: args.database_id},
                                    init=[deploy]),
            },
            opts=job_options(self, [args.database] if args.database is not None else [],
                             DEADLINE_SECONDS),
        )
        self.register_outputs({"image_digest": self.image_digest})


@dataclass
class ContractGateArgs:
    cfg: StackConfig
    namespace: pulumi.Input[str]
    admin_dsn: pulumi.Input[str]          # secret
    image: pulumi.Input[str]              # the expand gate's tools image: the same SQL tree
    database_id: pulumi.Input[str]        # a new database re-runs it, as the expand gate
    deployment: pulumi.Resource           # the app Deployment, awaited to its rollout's end
    app_image: pulumi.Input[str]          # the release that rolled: a new one re-runs it


class ContractGate(pulumi.ComponentResource):
    """`deploy --phase contract` as a Job after the app's rollout (the module's docstring)."""

    resource: k8s.batch.v1.Job

    def __init__(self, name: str, args: ContractGateArgs, opts: pulumi.ResourceOptions | None = None):
        # It registered as a MigrationGate in its first release: the alias keeps the Job of
        # a stack deployed then (its URN derives from this type) instead of replacing it.
        renamed = pulumi.ResourceOptions(aliases=[pulumi.Alias(type_="shipshape:infra:MigrationGate")])
        super().__init__("shipshape:infra:ContractGate", name, None,
                         pulumi.ResourceOptions.merge(opts, renamed))
        cfg = args.cfg
        # The superuser DSN only: the expand gate already gave the app role its login.
        credentials = secret(f"{name}-credentials", cfg, args.namespace,
                             {"DATABASE_URL": args.admin_dsn}, component="contract-gate",
                             parent=self)
        tmp, tmp_mount = tmp_volume()
        deploy = _step("deploy", args.image,
                       ["invoke", "deploy", "--env", cfg.stack, "--phase", "contract"],
                       _common_env(cfg, "contract", credentials.metadata.name), tmp_mount)
        pod_labels = labels(cfg, "shipshape-gate", "contract-gate")
        annotations = {DATABASE_ID_ANNOTATION: args.database_id,
                       APP_RELEASE_ANNOTATION: args.app_image}
        self.resource = k8s.batch.v1.Job(
            name,
            metadata=job_metadata(args.namespace, pod_labels),
            spec={
                "backoffLimit": CONTRACT_RETRIES,
                "activeDeadlineSeconds": DEADLINE_SECONDS,
                "podFailurePolicy": retry_only_refused("deploy"),
                "template": job_pod(cfg, pod_labels, [deploy], [tmp], annotations=annotations),
            },
            opts=job_options(self, [args.deployment], DEADLINE_SECONDS),
        )
        self.register_outputs({})
