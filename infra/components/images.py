"""Images are built once and promoted by digest.

dev builds an image from a Dockerfile (and, when the stack names a registry repository in
`shipshape:image_registry`, pushes it); its `repo_digest` is exported, and staging and prod
deploy exactly that digest (`shipshape:<key>: repo@sha256:...`), never a build of their
own: the bytes that passed dev are the bytes that run in prod. infra/config.py refuses
anything else outside dev, and the policy pack refuses it again at preview.

Both platforms use this module: the docker platform runs the image on the same Docker
engine that built it, the kubernetes platform pulls it from the registry it was pushed to.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_docker as docker

from infra.config import StackConfig


@dataclass
class Image:
    resource: pulumi.Resource | None   # the build, or None when a digest is given
    ref: pulumi.Output[str]            # what a container runs: the pushed digest, the local
                                       # image id of an unpushed build, or the given digest
    digest: pulumi.Output[str]         # what the stack exports for promotion


def registry_server(repository: str) -> str:
    """The registry host of a repository, as docker reads it (`docker.io` when it names none)."""
    first = repository.split("/", 1)[0]
    return first if "/" in repository and ("." in first or ":" in first or first == "localhost") else "docker.io"


@dataclass
class ImageSource:
    """Where an image comes from: a given digest, or a build (dev)."""

    given: str = ""                    # repo@sha256:... ("" builds)
    project_dir: Path = Path(".")      # the build context: the repository root
    registry: str = ""                 # repository prefix a build is pushed to ("" keeps it local)
    username: str = ""
    password: pulumi.Input[str] | None = None   # secret


def image(name: str, source: ImageSource, *, dockerfile: Path, repository: str, tag: str,
          parent: pulumi.Resource) -> Image:
    """The image `source.given` names, or, when it is "" (dev), a build of dockerfile."""
    if source.given:
        return Image(None, pulumi.Output.from_input(source.given), pulumi.Output.from_input(source.given))
    image_name = f"{source.registry.rstrip('/')}/{repository}:{tag}" if source.registry else f"{repository}:{tag}"
    login = None
    if source.registry and source.username:
        login = docker.RegistryArgs(server=registry_server(image_name), username=source.username,
                                    password=source.password)
    build = docker.Image(
        name,
        build=docker.DockerBuildArgs(context=str(source.project_dir), dockerfile=str(dockerfile)),
        image_name=image_name,
        # Without a registry the image stays on the engine that built it (the docker
        # platform's own host); with one it is pushed, which is what makes a digest.
        skip_push=not source.registry,
        registry=login,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    # repo_digest: repo@sha256:... once pushed; for a local-only build (pulumi-docker 4.4+)
    # the image id, sha256:...: unique per build either way, so a rebuild rolls the app.
    return Image(build, build.repo_digest, build.repo_digest)


def app_source(cfg: StackConfig) -> ImageSource:
    return ImageSource(cfg.app_image, cfg.project_dir, cfg.image_registry, cfg.registry_username,
                       cfg.registry_password)


def gate_source(cfg: StackConfig) -> ImageSource:
    return ImageSource(cfg.gate_image, cfg.project_dir, cfg.image_registry, cfg.registry_username,
                       cfg.registry_password)
