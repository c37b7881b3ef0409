"""Structured logs: one JSON object per line, with the request id, and no secret ever.

Every line passes through redact() at the formatter, after the message and any traceback
are rendered: bearer tokens, this app's token format, passwords in DSNs and key=value
strings, and the registered secrets (the database password, the Hugging Face key) are
replaced by ***. Request headers and query strings are never logged in the first place.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from contextvars import ContextVar

# One mutable dict per request (set by the middleware): whatever sets the user id deeper
# down (the auth dependency) is seen by the access log line, whichever context it runs in.
request_ctx: ContextVar[dict | None] = ContextVar("request_ctx", default=None)


def current_request_id() -> str | None:
    ctx = request_ctx.get()
    return ctx.get("requestId") if ctx else None


def set_user(user_id: str) -> None:
    ctx = request_ctx.get()
    if ctx is not None:
        ctx["userId"] = user_id


_SECRETS: set[str] = set()
_PATTERNS = (
    (re.compile(r"(?i)\b(bearer)\s+[^\s\"',;\\]+"), r"\1 ***"),
    (re.compile(r"\bacr_[A-Za-z0-9_\-]{6,}"), "acr_***"),
    (re.compile(r"\bhf_[A-Za-z0-9]{6,}"), "hf_***"),
    (re.compile(r"(postgres(?:ql)?://[^:/@\s\"]*):[^@\s\"]*@"), r"\1:***@"),
    (re.compile(r"(?i)\b(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s\"]+)"), r"\1***"),
)


def register_secret(value: str | None) -> None:
    if value and len(value) >= 4:
        _SECRETS.add(value)


def redact(text: str) -> str:
    if not text:
        return text
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_dsn(dsn: str) -> str:
    """host:port/dbname as user, for a startup line; never the password."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(dsn)
    except (psycopg.Error, ValueError):
        return "(unparsable DATABASE_URL)"
    return (
        f"{parts.get('user', '?')}@{parts.get('host', 'localhost')}:"
        f"{parts.get('port', 5432)}/{parts.get('dbname', '?')}"
    )


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        ctx = request_ctx.get()
        if ctx:
            entry.update(ctx)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        # Redact the values, not the encoded line: a pattern must never eat JSON escapes.
        return json.dumps(_redact_all(entry), default=str, ensure_ascii=False)


def _redact_all(value):
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_all(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_all(v) for v in value]
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return redact(str(value))


def configure(level: str = "INFO") -> None:
    """Send every logger (ours, uvicorn's, psycopg's) as JSON lines to stdout."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # our middleware logs each request
    logging.getLogger("httpx").setLevel(logging.WARNING)  # it would log full request URLs
    logging.getLogger("psycopg.pool").setLevel(logging.WARNING)


def log(logger: logging.Logger, level: int, msg: str, **fields) -> None:
    logger.log(level, msg, extra={"fields": fields})
