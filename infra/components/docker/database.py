"""The docker platform's database: a data volume, the configured PostgreSQL image, and a
container that counts as created only once `pg_isready` says it accepts connections
(healthcheck + wait=True), so anything that depends on it (the migration gate) starts
against a healthy server.

The port is published on the configured bind address, 127.0.0.1 unless the stack says
otherwise (the policy pack forbids anything beyond loopback without an explicit allowance).

The volume is mounted at /var/lib/postgresql, not .../data: from PostgreSQL 18 the official
image keeps its data in a major-version subdirectory (/var/lib/postgresql/18/docker, ready
for `pg_upgrade --link`) and refuses to start with a mount at the old path. The volume's
name carries the major for the same reason: a new major is a new, empty data directory,
and a protected volume cannot be replaced, so a major changed in a stack file fails the
update loudly instead of starting an empty database next to the old one.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import pulumi
import pulumi_docker as docker

from infra.config import POSTGRES_MAJOR

CONTAINER_PORT = 5432
DATA_DIR = "/var/lib/postgresql"


@dataclass
class DatabaseArgs:
    env: str                                 # the stack: names the container and the volume
    image: str
    database: str
    superuser: str
    superuser_password: pulumi.Input[str]   # a secret
    network_name: pulumi.Input[str]
    port: int                                # host port
    bind_address: str = "127.0.0.1"
    host: str = "127.0.0.1"                  # where the machine running Pulumi reaches the port
    protect_data: bool = False

    @property
    def container_name(self) -> str:
        return f"shipshape-{self.env}-db"


def dsn(user: str, password: str, host: str, port: int, database: str) -> str:
    return f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{quote(database, safe='')}"


class Database(pulumi.ComponentResource):
    container: docker.Container
    endpoint: pulumi.Output[str]
    admin_dsn: pulumi.Output[str]   # secret: the superuser's DSN, from the machine running Pulumi
    internal_host: str              # the container's name on the env's network
    identity: pulumi.Output[str]    # the container's id: new whenever the database is recreated

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("shipshape:infra:Database", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.image = docker.RemoteImage(f"{name}-image", name=args.image, keep_locally=True, opts=child)
        self.volume = docker.Volume(
            f"{name}-data",
            name=f"shipshape-{args.env}-pg{POSTGRES_MAJOR}",
            labels=[docker.VolumeLabelArgs(label="shipshape.env", value=args.env)],
            # Named, so a replacement cannot exist beside the old one: delete first.
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect_data,
                                        delete_before_replace=True),
        )
        envs = pulumi.Output.secret(pulumi.Output.all(args.superuser_password).apply(lambda v: [
            f"POSTGRES_USER={args.superuser}",
            f"POSTGRES_PASSWORD={v[0]}",
            f"POSTGRES_DB={args.database}",
        ]))
        self.container = docker.Container(
            name,
            name=args.container_name,
            image=self.image.image_id,
            envs=envs,
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=["CMD-SHELL", f"pg_isready -U {args.superuser} -d {args.database} -h 127.0.0.1"],
                interval="2s", timeout="5s", retries=30, start_period="5s",
            ),
            wait=True,
            wait_timeout=180,
            ports=[docker.ContainerPortArgs(internal=CONTAINER_PORT, external=args.port,
                                            ip=args.bind_address, protocol="tcp")],
            volumes=[docker.ContainerVolumeArgs(volume_name=self.volume.name, container_path=DATA_DIR)],
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(
                name=args.network_name, aliases=[args.container_name])],
            labels=[docker.ContainerLabelArgs(label="shipshape.role", value="database"),
                    docker.ContainerLabelArgs(label="shipshape.env", value=args.env)],
            restart="unless-stopped",
            # pulumi-docker creates a replacement before deleting the old container
            # (pulumi-docker#1356, by design), which a fixed name and host port make fail
            # ("name already in use", "port is already allocated"): delete first.
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["envs"],
                                        delete_before_replace=True),
        )
        self.internal_host = args.container_name
        # Docker gives every container a new 64-hex id; a volume's id is only its name, the
        # same after a re-creation, so the container's id is what says "another database".
        self.identity = self.container.id
        self.endpoint = pulumi.Output.from_input(f"{args.host}:{args.port}")
        self.admin_dsn = pulumi.Output.secret(pulumi.Output.all(args.superuser_password).apply(
            lambda v: dsn(args.superuser, v[0], args.host, args.port, args.database)))
        self.register_outputs({"endpoint": self.endpoint, "admin_dsn": self.admin_dsn})
