"""What the server said, as one redacted line for an operator."""

from __future__ import annotations

import psycopg

from shipshape.secrets import redact
from shipshape.settings import Environment


def server_message(exc: psycopg.Error, env: Environment | None = None, *,
                   detail: bool = True) -> str:
    """What the server said, in one line: its message and (unless detail is false) its
    detail, or the timeout that cancelled the statement. Redacted."""
    if isinstance(exc, psycopg.errors.QueryCanceled) and env is not None:
        return f"statement_timeout={env.statement_timeout} expired"
    reason = (exc.diag.message_primary or str(exc)).strip()
    if detail and exc.diag.message_detail:
        reason += f" ({exc.diag.message_detail.strip()})"
    return redact(reason)
