"""The docker platform's Avatar Creator API: its image (built from app/Dockerfile in dev,
else the digest dev built; see images.py) and its containers, which depend on the migration
gate: they are created or updated only after migrate -> seed -> verify passed, and they
count as created only once /health/ready says 200 (healthcheck + wait=True).

Rolling replacement (issue #12): a new image replaces the replicas one at a time, each new
container healthy before the next replica is touched (replica i depends on replica i-1),
and create-before-delete: the old containers keep serving until the update ends, when
Pulumi deletes the replaced ones. pulumi-docker can only create a replacement first when
nothing of the old container is fixed (pulumi-docker#1356): so each container's name
carries a hash of the image it runs (an unchanged image is the same name: no change), and
its host port is assigned by Docker (the `app_url` output is the first replica's).

The whole environment is one secret: DATABASE_URL holds the app role's password (the app
role, never the superuser), and HUGGINGFACE_API_KEY the provider's key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_docker as docker

from infra.components import images
from infra.components.docker.database import CONTAINER_PORT, dsn

APP_PORT = 8000
READY_PROBE = ("import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen("
               "'http://127.0.0.1:%s/health/ready' % os.environ.get('APP_PORT', '8000'), "
               "timeout=4).status == 200 else 1)")


@dataclass
class AppArgs:
    env: str                            # the stack: names the containers and the built image
    profile: str                        # the shipshape env profile (the app's APP_ENV)
    project_dir: Path
    network_name: pulumi.Input[str]
    database_host: str                  # the database container's name on the network
    database: str
    app_role: str
    app_password: pulumi.Input[str]     # secret
    gate: pulumi.Resource               # the migration gate the containers wait for
    image: images.ImageSource = None    # a given digest, or a build of app/Dockerfile (dev)
    port: int = 8000                    # kept for the config; Docker picks host ports (rolling)
    bind_address: str = "127.0.0.1"
    replicas: int = 1
    generation_provider: str = "placeholder"
    huggingface_api_key: pulumi.Input[str] | None = None   # secret



def container_name(env: str, replica: int, image_ref: str) -> str:
    """Unique per image: the old and the new container of a replica coexist while it rolls."""
    return f"shipshape-{env}-app-{replica}-{hashlib.sha256(image_ref.encode()).hexdigest()[:10]}"


def published_url(host: str, ports) -> str:
    """The URL of a container's app port, from its `ports` output (Docker's host port)."""
    port = ports[0]
    external = port.get("external") if isinstance(port, dict) else port.external
    return f"http://{host}:{external}"


class App(pulumi.ComponentResource):
    containers: list
    url: pulumi.Output[str]
    image_digest: pulumi.Output[str]    # what the stack exports for promotion

    def __init__(self, name: str, args: AppArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("shipshape:infra:App", name, None, opts)
        source = args.image or images.ImageSource(project_dir=args.project_dir)
        built = images.image(f"{name}-image", source, dockerfile=args.project_dir / "app" / "Dockerfile",
                             repository="avatar-creator", tag=args.env, parent=self)
        if built.resource is None:
            # A given digest: pulled onto this engine; the container runs that local image.
            self.image = docker.RemoteImage(f"{name}-image", name=source.given, keep_locally=True,
                                            opts=pulumi.ResourceOptions(parent=self))
            image_ref = self.image.image_id
        else:
            self.image = built.resource
            image_ref = built.ref  # unique per build, so a rebuild replaces the containers
        self.image_digest = built.digest
        # The provider's key only where the provider is used: no secret the app does not need.
        needs_key = args.generation_provider == "huggingface" and args.huggingface_api_key is not None
        secrets = [args.app_password] + ([args.huggingface_api_key] if needs_key else [])
        envs = pulumi.Output.secret(pulumi.Output.all(*secrets).apply(lambda values: self._envs(args, values)))
        self.containers = []
        for replica in range(args.replicas):
            after = self.containers[-1:]  # one replica at a time: the previous one first
            self.containers.append(self._container(name, args, replica, image_ref, envs,
                                                   source, after))
        host = "127.0.0.1" if args.bind_address in ("0.0.0.0", "::") else args.bind_address
        self.url = self.containers[0].ports.apply(lambda ports: published_url(host, ports))
        self.register_outputs({"url": self.url, "image_digest": self.image_digest})

    def _container(self, name, args: AppArgs, replica: int, image_ref, envs, source, after):
        return docker.Container(
                f"{name}-{replica}",
                name=pulumi.Output.from_input(image_ref).apply(
                    lambda ref: container_name(args.env, replica, ref)),
                image=image_ref,
                envs=envs,
                healthcheck=docker.ContainerHealthcheckArgs(
                    tests=["CMD", "python", "-c", READY_PROBE],
                    interval="5s", timeout="5s", retries=12, start_period="10s",
                ),
                wait=True,
                wait_timeout=180,
                # No fixed host port: the new container of a replica starts while the old
                # one still holds its port. Docker picks one; app_url says which.
                ports=[docker.ContainerPortArgs(internal=APP_PORT, ip=args.bind_address,
                                                protocol="tcp")],
                networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=args.network_name)],
                labels=[docker.ContainerLabelArgs(label="shipshape.role", value="app"),
                        docker.ContainerLabelArgs(label="shipshape.env", value=args.env),
                        # What the policy pack reads: which profile this is, and the image
                        # reference it runs (a digest outside dev), since `image` itself is
                        # only the engine's local image id.
                        docker.ContainerLabelArgs(label="shipshape.profile", value=args.profile),
                        docker.ContainerLabelArgs(label="shipshape.image",
                                                  value=source.given or "build")],
                restart="unless-stopped",
                opts=pulumi.ResourceOptions(parent=self, depends_on=[args.gate, *after],
                                            additional_secret_outputs=["envs"],
                                            delete_before_replace=False),
            )

    @staticmethod
    def _envs(args: AppArgs, values: list) -> list[str]:
        envs = {
            "DATABASE_URL": dsn(args.app_role, values[0], args.database_host, CONTAINER_PORT, args.database),
            "APP_ENV": args.profile,
            "APP_PORT": str(APP_PORT),
            "GENERATION_PROVIDER": args.generation_provider,
        }
        if len(values) > 1:
            envs["HUGGINGFACE_API_KEY"] = values[1]
        return [f"{key}={value}" for key, value in sorted(envs.items())]
