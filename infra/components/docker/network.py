"""The env's private Docker network: the app reaches the database by its name on it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker


@dataclass
class NetworkArgs:
    env: str

    @property
    def network_name(self) -> str:
        return f"shipshape-{self.env}"


class Network(pulumi.ComponentResource):
    name: pulumi.Output[str]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("shipshape:infra:Network", name, None, opts)
        self.network = docker.Network(
            name,
            name=args.network_name,
            driver="bridge",
            labels=[docker.NetworkLabelArgs(label="shipshape.env", value=args.env)],
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),  # named
        )
        self.name = self.network.name
        self.register_outputs({"name": self.name})
