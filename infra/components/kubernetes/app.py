"""The kubernetes platform's Avatar Creator API: a Deployment, its Service, a
PodDisruptionBudget and, when the stack sets shipshape:app_max_replicas, a
HorizontalPodAutoscaler.

- The Deployment depends_on the gate Job, which pulumi-kubernetes awaits to completion:
  its pods of a new release are created only after migrate -> seed -> verify passed.
- Rolling update with maxUnavailable 0: a new pod must be Ready (readiness probe on
  /health/ready: the database answers, the schema is the app's version, the models are
  seeded) before an old one goes, so a release that cannot serve never takes capacity
  away; pulumi-kubernetes awaits the rollout and fails the update if it does not finish.
  Liveness is /health (the process answers), never /health/ready: a database outage must
  not make Kubernetes restart every pod.
- Non-root (uid 10001, as app/Dockerfile), read-only root filesystem (/tmp is an
  emptyDir), no privilege escalation, all capabilities dropped, RuntimeDefault seccomp, no
  service account token: the app never talks to the Kubernetes API.
- Requests and limits on every container (the policy pack requires limits); the
  autoscaler scales on CPU against the request.
- With an autoscaler the Deployment leaves `replicas` unset: Pulumi would otherwise reset
  the autoscaler's count to app_replicas on every update.
- The PodDisruptionBudget allows one voluntary eviction at a time (maxUnavailable 1, not
  minAvailable, which with one replica would block every node drain forever).
- DATABASE_URL (the app role, never the superuser) and HUGGINGFACE_API_KEY come from a
  Secret made from Pulumi secrets; the manifest only names it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.components import images
from infra.components.kubernetes.common import (
    container_security,
    labels,
    pod_security,
    resources,
    secret,
    secret_env,
    selector,
    tmp_volume,
)
from infra.config import StackConfig

APP_NAME = "avatar-creator"
APP_PORT = 8000


@dataclass
class AppArgs:
    cfg: StackConfig
    namespace: pulumi.Input[str]
    app_dsn: pulumi.Input[str]       # secret
    gate: pulumi.Resource            # the gate Job the Deployment waits for


class App(pulumi.ComponentResource):
    deployment: k8s.apps.v1.Deployment
    url: pulumi.Output[str]
    image_digest: pulumi.Output[str]
    image_ref: pulumi.Output[str]

    def __init__(self, name: str, args: AppArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("shipshape:infra:App", name, None, opts)
        cfg = args.cfg
        child = pulumi.ResourceOptions(parent=self)
        built = images.image(f"{name}-image", images.app_source(cfg),
                             dockerfile=cfg.project_dir / "app" / "Dockerfile",
                             repository=APP_NAME, tag=cfg.stack, parent=self)
        self.image_digest = built.digest
        self.image_ref = built.ref  # what the pods run: the contract gate re-runs on a new one
        values = {"DATABASE_URL": args.app_dsn}
        if cfg.generation_provider == "huggingface" and cfg.huggingface_api_key is not None:
            values["HUGGINGFACE_API_KEY"] = cfg.huggingface_api_key
        credentials = secret(f"{name}-credentials", cfg, args.namespace, values,
                             component="api", parent=self)
        tmp, tmp_mount = tmp_volume()
        pod_labels = labels(cfg, APP_NAME, "api")
        match = selector(cfg, APP_NAME, "api")
        env = [
            {"name": "APP_ENV", "value": cfg.profile},
            {"name": "APP_HOST", "value": "0.0.0.0"},
            {"name": "APP_PORT", "value": str(APP_PORT)},
            {"name": "GENERATION_PROVIDER", "value": cfg.generation_provider},
        ] + [secret_env(key, credentials.metadata.name) for key in sorted(values)]
        spec = {
            "selector": {"matchLabels": match},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "revisionHistoryLimit": 5,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security(),
                    "terminationGracePeriodSeconds": 30,
                    **({"imagePullSecrets": [{"name": cfg.image_pull_secret}]}
                       if cfg.image_pull_secret else {}),
                    "containers": [{
                        "name": "api",
                        "image": built.ref,
                        "ports": [{"name": "http", "containerPort": APP_PORT, "protocol": "TCP"}],
                        "env": env,
                        "readinessProbe": {"httpGet": {"path": "/health/ready", "port": "http"},
                                           "periodSeconds": 5, "timeoutSeconds": 4,
                                           "failureThreshold": 3},
                        "livenessProbe": {"httpGet": {"path": "/health", "port": "http"},
                                          "initialDelaySeconds": 10, "periodSeconds": 10,
                                          "timeoutSeconds": 4, "failureThreshold": 3},
                        "resources": resources(cfg.app_resources),
                        "securityContext": container_security(),
                        "volumeMounts": [tmp_mount],
                    }],
                    "volumes": [tmp],
                },
            },
        }
        if cfg.app_max_replicas is None:
            spec["replicas"] = cfg.app_replicas
        self.deployment = k8s.apps.v1.Deployment(
            name,
            metadata={"name": APP_NAME, "namespace": args.namespace, "labels": pod_labels},
            spec=spec,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.gate]),
        )
        self.service = k8s.core.v1.Service(
            name,
            metadata={"name": APP_NAME, "namespace": args.namespace, "labels": pod_labels},
            spec={"type": "ClusterIP", "selector": match,
                  "ports": [{"name": "http", "port": APP_PORT, "targetPort": "http", "protocol": "TCP"}]},
            opts=child,
        )
        self.disruption_budget = k8s.policy.v1.PodDisruptionBudget(
            name,
            metadata={"name": APP_NAME, "namespace": args.namespace, "labels": pod_labels},
            spec={"maxUnavailable": 1, "selector": {"matchLabels": match}},
            opts=child,
        )
        self.autoscaler = None
        if cfg.app_max_replicas is not None:
            self.autoscaler = k8s.autoscaling.v2.HorizontalPodAutoscaler(
                name,
                metadata={"name": APP_NAME, "namespace": args.namespace, "labels": pod_labels},
                spec={
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP_NAME},
                    "minReplicas": cfg.app_replicas,
                    "maxReplicas": cfg.app_max_replicas,
                    "metrics": [{"type": "Resource", "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": cfg.app_cpu_target}}}],
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.deployment]),
            )
        self.url = pulumi.Output.concat(f"http://{APP_NAME}.", args.namespace, f".svc:{APP_PORT}")
        self.register_outputs({"url": self.url, "image_digest": self.image_digest})
