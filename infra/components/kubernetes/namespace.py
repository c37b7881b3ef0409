"""The kubernetes platform's `network`: the stack's namespace (what a Docker network is to
the docker platform: the app reaches the database by a name in it) and the provider that
pins the cluster.

The provider names its kubeconfig context (shipshape:k8s_context, required): without it
pulumi-kubernetes uses kubectl's current context, and `up` of prod would go wherever a
laptop last pointed. Every resource of the stack is created through this provider.

The namespace enforces the `baseline` Pod Security Standard and warns and audits against
`restricted`: the stack's own pods meet `restricted` (non-root, no privilege escalation,
all capabilities dropped, RuntimeDefault seccomp), while the database pods belong to the
CloudNativePG operator, whose security context this program does not write.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.components.kubernetes.common import labels
from infra.config import StackConfig


@dataclass
class NetworkArgs:
    cfg: StackConfig


class Network(pulumi.ComponentResource):
    name: pulumi.Output[str]          # the namespace
    provider: k8s.Provider

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("shipshape:infra:Network", name, None, opts)
        cfg = args.cfg
        self.provider = k8s.Provider(
            f"{name}-cluster",
            context=cfg.k8s_context,
            opts=pulumi.ResourceOptions(parent=self),
        )
        if cfg.k8s_create_namespace:
            self.namespace = k8s.core.v1.Namespace(
                name,
                metadata={
                    "name": cfg.k8s_namespace,
                    "labels": {
                        **labels(cfg, "shipshape", "namespace"),
                        "pod-security.kubernetes.io/enforce": "baseline",
                        "pod-security.kubernetes.io/warn": "restricted",
                        "pod-security.kubernetes.io/audit": "restricted",
                    },
                },
                opts=pulumi.ResourceOptions(parent=self, provider=self.provider),
            )
            self.name = self.namespace.metadata.name  # an output: dependents wait for the namespace
        else:
            self.namespace = None
            self.name = pulumi.Output.from_input(cfg.k8s_namespace)
        self.register_outputs({"name": self.name})
