"""Bearer tokens: issued once, stored as SHA-256 only (api_tokens, migration 0011).

A token is "acr_" + 43 url-safe characters (256 random bits). Only its hash and its first
8 characters (to recognise it in a support request) are stored. Also the `python -m app
token` command, which issues one for a user and writes it to a private file (mode 0600).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

PREFIX = "acr_"


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(token: str) -> bool:
    return token.startswith(PREFIX) and 20 <= len(token) <= 200


ISSUE_SQL = """
INSERT INTO api_tokens ("userId", name, "tokenHash", "tokenPrefix", "expiresAt")
VALUES (%(user_id)s, %(name)s, %(hash)s, %(prefix)s, %(expires_at)s)
RETURNING id
"""

LOOKUP_SQL = """
SELECT u.id, u.email, u.name, u."creditBalance", u."accountType", u."subscriptionTier",
       u."unlimitedUntil", t.id AS "tokenId", t."lastUsedAt"
FROM api_tokens t
JOIN users u ON u.id = t."userId"
WHERE t."tokenHash" = %s
  AND t."revokedAt" IS NULL
  AND (t."expiresAt" IS NULL OR t."expiresAt" > now())
"""


def issue(conn, user_id: str, name: str = "default", expires_at=None) -> str:
    """Create a token for user_id on a (sync) psycopg connection; returns the token.

    The caller commits. The token itself is returned once and never stored.
    """
    token = new_token()
    conn.execute(
        ISSUE_SQL,
        {
            "user_id": user_id,
            "name": name,
            "hash": token_hash(token),
            "prefix": token[:8],
            "expires_at": expires_at,
        },
    )
    return token


def is_valid(conn, token: str, user_id: str | None = None) -> bool:
    row = conn.execute(LOOKUP_SQL, [token_hash(token)]).fetchone()
    if row is None:
        return False
    return user_id is None or row[0] == user_id


def write_private(path: Path, content: str) -> None:
    """Write content to path readable by its owner only (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, content.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def cli(argv: list[str]) -> int:
    """python -m app token --email E [--name N] [--output FILE] [--reuse]

    Issues a token for the user with that email. With --output the token goes to FILE
    (mode 0600) and only the path is printed; with --reuse an existing FILE whose token
    is still valid for that user is kept. Without --output the token is printed, which
    is refused when APP_ENV=prod: a production secret is never printed.
    """
    import argparse

    import psycopg

    parser = argparse.ArgumentParser(
        prog="python -m app token",
        description=cli.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--email", required=True)
    parser.add_argument("--name", default="cli")
    parser.add_argument("--output", type=Path)
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args(argv)
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        parser.error("DATABASE_URL is not set")
    if args.output is None and os.environ.get("APP_ENV", "local") == "prod":
        parser.error("refusing to print a production token: pass --output FILE")
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            row = conn.execute("SELECT id FROM users WHERE email = %s", [args.email]).fetchone()
            if row is None:
                print(
                    f"no user with email {args.email}; create it first (the demo user "
                    f"comes from the seeds in local and dev: `invoke deploy`)"
                )
                return 2
            user_id = row[0]
            if args.reuse and args.output is not None and args.output.exists():
                existing = args.output.read_text().strip()
                if existing and is_valid(conn, existing, user_id):
                    print(f"kept the valid token in {args.output}")
                    return 0
            token = issue(conn, user_id, args.name)
            conn.commit()
    except psycopg.errors.UndefinedTable:
        print("api_tokens does not exist: the database is behind the app; run `invoke deploy`")
        return 2
    except psycopg.OperationalError as exc:
        from app.logs import redact

        print(f"cannot reach the database: {redact(str(exc)).strip()}")
        return 2
    if args.output is not None:
        write_private(args.output, token + "\n")
        print(f"wrote a new token for {args.email} to {args.output} (mode 0600)")
    else:
        print(token)
    return 0
