"""A Docker engine, a base image made from Debian's packages, and app/Dockerfile built on it.

Opt-in (SHIPSHAPE_CONTAINER_TEST=1; .ci/run sets it): a cold run makes the base image
with debootstrap (about 2 minutes here) before building. The base image is cached in the
engine under a tag that names its recipe (suite, packages, the CA bundle copied in), so a
later run reuses it and only rebuilds the app's layers (seconds, from the layer cache).

- Engine: the one `docker` talks to; if none answers and `dockerd` is installed, it is
  started for the session (root only), its log in the session's tmp dir, and stopped at
  the end. Skipped, saying why, only when no engine can be had.
- Base: SHIPSHAPE_CONTAINER_BASE names one to use as is (e.g. python:3.12-slim where
  images can be pulled); otherwise `debootstrap --variant=minbase bookworm`, a venv in
  /opt/venv (`python` and `pip` on PATH, as the slim image has them), the host's CA bundle
  copied in (pip inside the build needs it where TLS is intercepted), then
  `tar -C DIR -c . | docker import - TAG`. SHIPSHAPE_DEBIAN_MIRROR picks debootstrap's
  mirror (default: debootstrap's own).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

OPT_IN = "SHIPSHAPE_CONTAINER_TEST"
SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "passwd")  # passwd: useradd, which the Dockerfile runs
RECIPE = "1"  # bump when the steps below change: the tag changes, the cache is rebuilt
PATH = "/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
IMAGE_CA = "/etc/ssl/certs/ca-certificates.crt"
APP_IMAGE = "shipshape-avatar-creator:test"


def docker(*args: str, timeout: float = 120, check: bool = True,
           **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], check=False, capture_output=True, text=True,
                          timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} ... exited {proc.returncode}:\n"
                             f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return proc


def _engine_answers() -> bool:
    try:
        return docker("info", "--format", "{{.ServerVersion}}", timeout=30,
                      check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _tail(path: Path, lines: int = 15) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory):
    if os.environ.get(OPT_IN) != "1":
        pytest.skip(f"opt-in: set {OPT_IN}=1 to build and run the app image (a cold run "
                    "makes a base image with debootstrap, ~2-4 minutes; CI sets it in .ci/run)")
    if shutil.which("docker") is None:
        pytest.skip("no `docker` CLI on PATH: install a Docker engine (Debian: apt-get "
                    "install docker.io)")
    if _engine_answers():
        yield
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        pytest.skip("no Docker engine answers and `dockerd` is not installed (Debian: "
                    "apt-get install docker.io)")
    if os.geteuid() != 0:
        pytest.skip("no Docker engine answers, and starting `dockerd` needs root")
    log = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([dockerd], stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while not _engine_answers():
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            pytest.skip(f"no Docker engine could be started: dockerd "
                        f"{'exited ' + str(process.returncode) if process.poll() is not None else 'did not answer in 60 s'}"
                        f"; its log ends:\n{_tail(log)}")
        time.sleep(0.5)
    yield
    _stop(process)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _host_ca_bundle() -> Path:
    paths = ssl.get_default_verify_paths()
    for candidate in (os.environ.get("SSL_CERT_FILE"), paths.cafile, IMAGE_CA):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise AssertionError("no CA bundle on this host to copy into the base image")


def base_tag(ca_bundle: Path) -> str:
    recipe = "\n".join([RECIPE, SUITE, *PACKAGES, PATH]).encode() + ca_bundle.read_bytes()
    return f"shipshape-test-base:{SUITE}-{hashlib.sha256(recipe).hexdigest()[:12]}"


def image_exists(tag: str) -> bool:
    return docker("image", "inspect", tag, check=False).returncode == 0


def make_base_image(tag: str, ca_bundle: Path, workdir: Path) -> None:
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        pytest.skip(f"the base image {tag} is not cached and `debootstrap` is not installed "
                    "(Debian: apt-get install debootstrap); or set SHIPSHAPE_CONTAINER_BASE "
                    "to an image that has Python 3.11+")
    if os.geteuid() != 0:
        pytest.skip(f"the base image {tag} is not cached and debootstrap needs root; run as "
                    "root once, or set SHIPSHAPE_CONTAINER_BASE to an image with Python 3.11+")
    root = workdir / "rootfs"
    log = workdir / "debootstrap.log"
    mirror = [os.environ["SHIPSHAPE_DEBIAN_MIRROR"]] if os.environ.get(
        "SHIPSHAPE_DEBIAN_MIRROR") else []
    with open(log, "wb") as out:
        proc = subprocess.run(
            [debootstrap, "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
             str(root), *mirror], check=False, stdout=out, stderr=subprocess.STDOUT, timeout=900)
    assert proc.returncode == 0, f"debootstrap exited {proc.returncode}:\n{_tail(log, 30)}"
    venv = subprocess.run(["chroot", str(root), "/usr/bin/python3", "-m", "venv", "/opt/venv"],
                          check=False, capture_output=True, text=True, timeout=300)
    assert venv.returncode == 0, f"python3 -m venv in the base: {venv.stderr}"
    for leftover in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc",
                     "usr/share/man", "usr/share/locale"):
        for path in (root / leftover).glob("*"):
            if path.name in ("lock", "partial"):  # apt's own, kept as debootstrap left them
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    shutil.copyfile(ca_bundle, root / IMAGE_CA.lstrip("/"))
    changes = [f"ENV PATH={PATH}", f"ENV PIP_CERT={IMAGE_CA}", f"ENV SSL_CERT_FILE={IMAGE_CA}",
               'CMD ["python3"]']
    tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(root), "-c", "."],
                           stdout=subprocess.PIPE)
    args = [a for change in changes for a in ("--change", change)]
    imported = subprocess.run(["docker", "import", *args, "-", tag], stdin=tar.stdout,
                              check=False, capture_output=True, text=True, timeout=600)
    tar.stdout.close()
    assert tar.wait() == 0 and imported.returncode == 0, f"docker import: {imported.stderr}"
    shutil.rmtree(root)


@pytest.fixture(scope="session")
def base_image(docker_engine, tmp_path_factory) -> str:
    given = os.environ.get("SHIPSHAPE_CONTAINER_BASE")
    if given:
        return given
    ca_bundle = _host_ca_bundle()
    tag = base_tag(ca_bundle)
    if not image_exists(tag):
        make_base_image(tag, ca_bundle, tmp_path_factory.mktemp("base"))
    return tag


@pytest.fixture(scope="session")
def app_image(base_image) -> tuple[str, str]:
    """app/Dockerfile built from the repository root on the base image; (tag, build log)."""
    proc = docker("build", "-f", "app/Dockerfile", "--build-arg", f"BASE_IMAGE={base_image}",
                  "-t", APP_IMAGE, ".", cwd=ROOT, timeout=900)
    return APP_IMAGE, proc.stdout + proc.stderr
