"""What every Kubernetes component of the stack shares: labels, the pod security context,
Secrets made from Pulumi secrets, the container conventions the policy pack checks, and
how every Job is named, awaited and replaced.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra.config import Resources, StackConfig

APP_UID = 10001        # the uid app/Dockerfile and infra/gate.Dockerfile run as
PROFILE_LABEL = "shipshape.io/profile"   # the policy pack reads it: digests outside dev
TMP_VOLUME = "tmp"     # a read-only root filesystem still needs a writable /tmp


def labels(cfg: StackConfig, name: str, component: str) -> dict:
    """Recommended labels, plus the profile the policy pack decides on."""
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": cfg.stack,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "shipshape",
        "app.kubernetes.io/managed-by": "pulumi",
        PROFILE_LABEL: cfg.profile,
    }


def selector(cfg: StackConfig, name: str, component: str) -> dict:
    """The immutable subset of labels a Deployment selects on (never the profile)."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": cfg.stack,
            "app.kubernetes.io/component": component}


def pod_security() -> dict:
    """Non-root, as app/Dockerfile's USER, with the runtime's default seccomp profile."""
    return {"runAsNonRoot": True, "runAsUser": APP_UID, "runAsGroup": APP_UID,
            "fsGroup": APP_UID, "seccompProfile": {"type": "RuntimeDefault"}}


def container_security() -> dict:
    return {"allowPrivilegeEscalation": False, "privileged": False,
            "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}}


def resources(r: Resources) -> dict:
    return {"requests": {"cpu": r.cpu_request, "memory": r.memory_request},
            "limits": {"cpu": r.cpu_limit, "memory": r.memory_limit}}


def tmp_volume() -> tuple[dict, dict]:
    """(volume, mount): an emptyDir at /tmp, the one writable path of a read-only root."""
    return ({"name": TMP_VOLUME, "emptyDir": {"sizeLimit": "256Mi"}},
            {"name": TMP_VOLUME, "mountPath": "/tmp"})


def secret_env(name: str, secret_name: pulumi.Input[str], key: str | None = None) -> dict:
    """An env var taken from a Secret: the manifest names the Secret, never the value."""
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key or name}}}


def secret(name: str, cfg: StackConfig, namespace: pulumi.Input[str], values: dict,
           *, component: str, parent: pulumi.Resource, type_: str = "Opaque") -> k8s.core.v1.Secret:
    """A Kubernetes Secret whose values are Pulumi secrets (encrypted in the state, masked in
    every output).

    immutable and auto-named (no metadata.name): a changed value makes a new Secret with a
    new name. pulumi-kubernetes replaces a Secret whose data changes, unless its
    enableSecretMutable option (which v5 may make the default) turns that into an update;
    an immutable Secret is replaced either way, hence immutable, explicitly.
    Whatever references the name (the gate Job, the Deployment) therefore changes too: a
    rotated password re-runs the gate and rolls the app, instead of the pods keeping a
    password the database no longer accepts."""
    return k8s.core.v1.Secret(
        name,
        metadata={"namespace": namespace, "labels": labels(cfg, "shipshape", component)},
        type=type_,
        immutable=True,
        string_data={key: pulumi.Output.secret(value) for key, value in values.items()},
        opts=pulumi.ResourceOptions(parent=parent),
    )


def job_pod(cfg: StackConfig, pod_labels: dict, containers: list[dict], volumes: list[dict],
            *, annotations: dict | None = None, init: list[dict] | None = None) -> dict:
    """A Job's pod template: never restarted in place (a podFailurePolicy needs that; the
    Job makes a new pod), no API token (it never talks to the API), the pod security
    context, the registry's pull secret when the stack has one."""
    return {
        "metadata": {"labels": pod_labels, **({"annotations": annotations} if annotations else {})},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": pod_security(),
            **({"imagePullSecrets": [{"name": cfg.image_pull_secret}]}
               if cfg.image_pull_secret else {}),
            **({"initContainers": init} if init else {}),
            "containers": containers,
            "volumes": volumes,
        },
    }


def job_metadata(namespace: pulumi.Input[str], job_labels: dict) -> dict:
    """A Job's metadata: auto-named (the new Job is created before the old one goes); a
    failed one is replaced by the next update instead of awaited again."""
    return {"namespace": namespace, "labels": job_labels,
            "annotations": {"pulumi.com/replaceUnready": "true"}}


def job_options(parent: pulumi.Resource, depends_on: list,
                deadline_seconds: int) -> pulumi.ResourceOptions:
    """A Job awaited to completion (never skipAwait), replaced (new before old) when its
    template changes, with a timeout beyond the Job's own activeDeadlineSeconds."""
    timeout = f"{deadline_seconds // 60 + 5}m"
    return pulumi.ResourceOptions(
        parent=parent,
        depends_on=depends_on,
        replace_on_changes=["spec"],
        delete_before_replace=False,
        custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout),
    )
