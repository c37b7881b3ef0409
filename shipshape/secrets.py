"""Secrets: every password shipshape has seen, removed from every text it shows.

Redaction happens at the output boundary (console, reports, rendered files); DSNs are
registered as soon as they are resolved, so a password seen once is never printed.
"""

from __future__ import annotations

import re

_KNOWN_SECRETS: set[str] = set()
# Any scheme (postgresql+psycopg:// from SQLAlchemy too); the password runs to the LAST
# '@' before the host, because operators paste passwords with an unencoded '@'.
_URL_PASSWORD = re.compile(r"(?P<scheme>\b[a-z][\w+.-]*://[^:/@\s]*):(?P<pw>[^\s/]*)@", re.I)
# key=value DSNs, with the misspellings libpq would reject but a log would still show.
_KV_PASSWORD = re.compile(
    r"(?P<key>\b(?:password|passwd|passwort|pwd|pass|pgpassword)\s*=\s*)"
    r"(?P<pw>'(?:[^'\\]|\\.)*'|\S+)", re.I)


def register_secret(secret: str | None) -> None:
    """Remember a secret so that redact() removes it wherever it appears."""
    if secret and len(secret) >= 3:
        _KNOWN_SECRETS.add(secret)


def register_dsn(dsn: str) -> None:
    """Remember the password inside a DSN (URL or key=value form).

    A DSN that libpq cannot parse is remembered whole: whatever it holds, it is never
    shown, since nobody can tell which part of a malformed DSN is the password."""
    from psycopg.conninfo import conninfo_to_dict

    for match in _URL_PASSWORD.finditer(dsn or ""):
        register_secret(match.group("pw"))
        # libpq splits an unencoded '@' elsewhere, and its messages then quote the pieces
        for piece in re.split(r"[@:]", match.group("pw")):
            register_secret(piece)
    try:
        register_secret(conninfo_to_dict(dsn).get("password"))
    except Exception:
        register_secret(dsn)


def redact(text: str) -> str:
    """Remove every password from text: in URLs, key=value DSNs, and known secrets."""
    if not text:
        return text
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('scheme')}:***@" if m.group("pw") else m.group(0), text)
    text = _KV_PASSWORD.sub(lambda m: f"{m.group('key')}***", text)
    for secret in sorted(_KNOWN_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def ambiguous_password(dsn: str) -> bool:
    """A URL whose password holds an unencoded '@': libpq would read part of it as the
    host and print it in its error. Such a DSN is refused before any connection."""
    match = _URL_PASSWORD.search(dsn or "")
    return bool(match and "@" in match.group("pw"))
