"""The docker platform's Avatar Creator API: its image (built from app/Dockerfile in dev,
else the digest dev built; see images.py) and its containers, which depend on the migration
gate: they are created or updated only after migrate -> seed -> verify passed, and they
count as created only once /health/ready says 200 (healthcheck + wait=True).

The whole environment is one secret: DATABASE_URL holds the app role's password (the app
role, never the superuser), and HUGGINGFACE_API_KEY the provider's key.
"""

from __future__ import annotations

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
    port: int = 8000
    bind_address: str = "127.0.0.1"
    replicas: int = 1
    generation_provider: str = "placeholder"
    huggingface_api_key: pulumi.Input[str] | None = None   # secret

    def host_port(self, replica: int) -> int:
        return self.port + replica


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
        self.containers = [
            docker.Container(
                f"{name}-{replica}",
                name=f"shipshape-{args.env}-app-{replica}",
                image=image_ref,
                envs=envs,
                healthcheck=docker.ContainerHealthcheckArgs(
                    tests=["CMD", "python", "-c", READY_PROBE],
                    interval="5s", timeout="5s", retries=12, start_period="10s",
                ),
                wait=True,
                wait_timeout=180,
                ports=[docker.ContainerPortArgs(internal=APP_PORT, external=args.host_port(replica),
                                                ip=args.bind_address, protocol="tcp")],
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
                # Fixed name and host port: a replacement is created only after the old
                # container is gone (pulumi-docker#1356), so on this platform a changed
                # app is a short gap per replica; the kubernetes platform rolls instead.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[args.gate],
                                            additional_secret_outputs=["envs"],
                                            delete_before_replace=True),
            )
            for replica in range(args.replicas)
        ]
        host = "127.0.0.1" if args.bind_address in ("0.0.0.0", "::") else args.bind_address
        self.url = pulumi.Output.from_input(f"http://{host}:{args.host_port(0)}")
        self.register_outputs({"url": self.url, "image_digest": self.image_digest})

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
