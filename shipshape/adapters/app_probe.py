"""The app's readiness, asked over HTTP: GET <url>/health/ready.

One probe for everyone who asks: deploy's app gate, doctor, and the local app process.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from shipshape.errors import ProblemsFound


def probe(url: str, timeout: float = 2.0) -> tuple[int | None, dict | str]:
    """GET url/health/ready: (status, body); (None, reason) when nothing answers."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health/ready", timeout=timeout) as resp:
            status, raw = resp.status, resp.read(20000)
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read(20000)
    except (urllib.error.URLError, OSError) as exc:
        return None, str(getattr(exc, "reason", exc))
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def require_ready(app_url: str, timeout: float = 5.0) -> None:
    """Return when the app answers 200; else ProblemsFound quoting what it said."""
    status, body = probe(app_url, timeout)
    if status == 200:
        return
    said = json.dumps(body)[:500] if isinstance(body, dict) else str(body)[:500]
    raise ProblemsFound(f"The app at {app_url.rstrip('/')}/health/ready is not ready: {said}. "
                        f"Check its logs; the database gates passed.")
