"""Secrets: every password shipshape has seen, removed from every text it shows.

Redaction happens at the output boundary (console, reports, rendered files); DSNs are
registered as soon as they are resolved, so a password seen once is never printed.
"""

from __future__ import annotations

import re

_KNOWN_SECRETS: set[str] = set()
_URL_PASSWORD = re.compile(r"(?P<scheme>postgres(?:ql)?://[^:/@\s]*):(?P<pw>[^@\s]*)@")
_KV_PASSWORD = re.compile(r"(?P<key>\bpassword\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|\S+)", re.I)


def register_secret(secret: str | None) -> None:
    """Remember a secret so that redact() removes it wherever it appears."""
    if secret and len(secret) >= 3:
        _KNOWN_SECRETS.add(secret)


def register_dsn(dsn: str) -> None:
    """Remember the password inside a DSN (URL or key=value form)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        register_secret(conninfo_to_dict(dsn).get("password"))
    except Exception:  # an unparsable DSN fails later with its own message
        pass


def redact(text: str) -> str:
    """Remove every password from text: in URLs, key=value DSNs, and known secrets."""
    if not text:
        return text
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('scheme')}:***@" if m.group("pw") else m.group(0), text)
    text = _KV_PASSWORD.sub(lambda m: f"{m.group('key')}***", text)
    for secret in sorted(_KNOWN_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
