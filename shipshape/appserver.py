"""The Avatar Creator API as a background process on this machine (the `local` stack).

`start` runs `python -m app` (uvicorn) detached from the caller, with its pid in
.shipshape/app/app.pid and its output in .shipshape/app/app.log, and waits until
/health/ready answers 200. Starting twice is harmless: a running app is reused. `stop`
ends it with SIGTERM (uvicorn finishes in-flight requests, the worker stops, the pool
closes), SIGKILL only after a timeout. The app itself imports nothing from shipshape:
this module only starts it, with DATABASE_URL and APP_ENV in its environment.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from shipshape.adapters.app_probe import probe
from shipshape.errors import ConfigError, ProblemsFound, Refused
from shipshape.paths import project_root, state_dir
from shipshape.secrets import redact

DEMO_EMAIL = "demo@avatar-creator.local"
DEMO_ENVS = ("local", "dev")  # the demo user is seeded there only (seeds/demo_users.yaml)


def app_dir(root: Path | None = None) -> Path:
    return state_dir(root) / "app"


def _files(root: Path | None) -> dict[str, Path]:
    directory = app_dir(root)
    return {
        "pid": directory / "app.pid",
        "log": directory / "app.log",
        "state": directory / "app.json",
        "token": state_dir(root) / "demo-token",
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not running.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _is_app(pid: int) -> bool:
    """True unless /proc shows that pid now belongs to something else (pid reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc (macOS): trust the pid file
    return b"-m" in cmdline and b"app" in cmdline


def _read_state(root: Path | None) -> dict:
    files = _files(root)
    try:
        pid = int(files["pid"].read_text().strip())
    except (OSError, ValueError):
        return {}
    try:
        state = json.loads(files["state"].read_text())
    except (OSError, ValueError):
        state = {}
    return {**state, "pid": pid}


def _clear(root: Path | None) -> None:
    files = _files(root)
    for key in ("pid", "state"):
        files[key].unlink(missing_ok=True)


def status(root: Path | None = None, *, check: bool = True) -> dict:
    """Whether the app runs (pid alive), where, and whether /health/ready says 200."""
    files = _files(root)
    state = _read_state(root)
    pid = state.get("pid")
    running = bool(pid) and _alive(pid) and _is_app(pid)
    result = {
        "running": running,
        "pid": pid if running else None,
        "url": state.get("url"),
        "log": str(files["log"]),
        "env": state.get("env"),
        "database": state.get("database"),
        "ready": False,
        "detail": "not running",
    }
    if running and check and result["url"]:
        code, body = probe(result["url"])
        result["ready"] = code == 200
        if code == 200:
            result["detail"] = "ready"
        elif isinstance(body, dict):
            result["detail"] = body.get("message") or f"HTTP {code}"
        else:
            result["detail"] = f"HTTP {code}: {body}" if code else f"not answering: {body}"
    elif running:
        result["detail"] = "running"
    return result


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _tail(path: Path, chars: int = 1500) -> str:
    try:
        return redact(path.read_text(errors="replace")[-chars:])
    except OSError:
        return "(no log)"


def start(
    dsn: str,
    *,
    env: str = "local",
    host: str = "127.0.0.1",
    port: int = 8000,
    root: Path | None = None,
    ready_timeout: float = 30.0,
    extra_env: dict | None = None,
    restart: bool = False,
) -> dict:
    """Start the app in the background (or reuse the running one); wait for readiness.

    `restart` stops a running app first (to pick up changed code or settings).

    Raises ConfigError (exit 5) when it cannot start or exits, ProblemsFound (exit 2) when
    it runs but /health/ready stays 503 (its body says which check and what to run).
    """
    root = Path(root) if root else project_root()
    current = status(root)
    if current["running"] and restart:
        stop(root)
    elif current["running"]:
        current["started"] = False
        return current
    _clear(root)
    if not _port_free(host, port):
        raise ConfigError(
            f"Port {port} on {host} is taken by another process, so the app cannot "
            f"listen there. Stop that process, or pass another port: "
            f"`invoke app.start --port {port + 1}`."
        )
    files = _files(root)
    files["log"].parent.mkdir(parents=True, exist_ok=True)
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "APP_ENV", "APP_HOST", "APP_PORT", "PORT")
    }
    environ.update(
        {
            "DATABASE_URL": dsn,
            "APP_ENV": env,
            "APP_HOST": host,
            "APP_PORT": str(port),
            "PYTHONUNBUFFERED": "1",
        }
    )
    environ.setdefault("GENERATION_PROVIDER", "placeholder")
    environ.update(extra_env or {})
    url = f"http://{host}:{port}"
    with open(files["log"], "ab") as log:
        log.write(f"--- {datetime.now(UTC).isoformat()} starting on {url}\n".encode())
        log.flush()
        process = subprocess.Popen(
            [sys.executable, "-m", "app"],
            cwd=root,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    files["pid"].write_text(f"{process.pid}\n")
    files["state"].write_text(
        json.dumps(
            {
                "url": url,
                "env": env,
                "database": redact(dsn),
                "log": str(files["log"]),
                "started_at": datetime.now(UTC).isoformat(),
            }
        )
    )
    deadline = time.monotonic() + ready_timeout
    code, body = None, "not started"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _clear(root)
            raise ConfigError(
                f"The app exited with code {process.returncode} right after "
                f"starting. Its log ({files['log']}) ends with:\n{_tail(files['log'])}"
            )
        code, body = probe(url, timeout=2.0)
        if code == 200:
            result = status(root)
            result["started"] = True
            return result
        time.sleep(0.2)
    detail = body.get("message") if isinstance(body, dict) else body
    raise ProblemsFound(
        f"The app runs (pid {process.pid}, {url}) but is not ready after "
        f"{ready_timeout:.0f} s: {detail}. It keeps running; see {files['log']} "
        f"and `invoke app.status`."
    )


def stop(root: Path | None = None, timeout: float = 15.0) -> bool:
    """Stop the app (SIGTERM, then SIGKILL after timeout). False when it was not running."""
    root = Path(root) if root else project_root()
    state = _read_state(root)
    pid = state.get("pid")
    if not pid or not _alive(pid) or not _is_app(pid):
        _clear(root)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        while _alive(pid) and time.monotonic() < deadline + 5:
            time.sleep(0.1)
    _clear(root)
    return True


def write_demo_token(dsn: str, *, env: str = "local", root: Path | None = None) -> Path:
    """Write a bearer token of the demo user to .shipshape/demo-token (mode 0600).

    Kept when the token already there is still valid, so `up` twice does not pile up
    tokens. Only for local and dev, where the seeds create the demo user; the token is
    never printed.
    """
    if env not in DEMO_ENVS:
        raise Refused(
            f"There is no demo user in {env} (only in {', '.join(DEMO_ENVS)}); "
            f"issue a real user's token with `python -m app token --email ... "
            f"--output FILE`."
        )
    root = Path(root) if root else project_root()
    path = _files(root)["token"]
    environ = {**os.environ, "DATABASE_URL": dsn, "APP_ENV": env}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "token",
            "--email",
            DEMO_EMAIL,
            "--name",
            "demo",
            "--output",
            str(path),
            "--reuse",
        ],
        cwd=root,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise ProblemsFound(
            f"Could not write the demo token: "
            f"{redact((result.stdout + result.stderr).strip())[-1000:]}"
        )
    return path
