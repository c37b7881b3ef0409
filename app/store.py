"""The SQL of the API, one function per operation. Every query is scoped to its user."""

from __future__ import annotations

from datetime import date, datetime

from psycopg import sql
from psycopg.types.json import Jsonb

from app import APP_ID
from app.schema import REQUIRED


def _columns(table: str) -> str:
    """The quoted column list of a table, as app.schema.REQUIRED declares it."""
    return ", ".join(f'"{column}"' for column in REQUIRED[table])


PROJECT_COLUMNS = _columns("avatar_projects")
AVATAR_COLUMNS = _columns("avatars")
# Attributes a client may set on an avatar (upload) or ask for (generate).
AVATAR_ATTRIBUTES = (
    "personaName",
    "personaAge",
    "personaPersonality",
    "personaBackground",
    "gender",
    "ageRange",
    "ethnicity",
    "bodyType",
    "hairStyle",
    "hairColor",
    "eyeColor",
    "skinTone",
    "style",
)
GENERATION_COLUMNS = _columns("avatar_generations")
MODEL_COLUMNS = (
    'id, "modelKey", "modelId", name, description, provider, tier, "creditCost", '
    'capabilities, "displayOrder"'
)
# Incident 1: lowest tier first, then the cheapest. Tiers are ranked, not sorted as text
# ('basic' < 'free' alphabetically would pick a paid model first).
MODEL_ORDER = (
    "CASE tier WHEN 'free' THEN 0 WHEN 'basic' THEN 1 WHEN 'pro' THEN 2 "
    'WHEN \'enterprise\' THEN 3 ELSE 4 END, "creditCost", "displayOrder", "modelKey"'
)


def timestamp(value: datetime | date) -> str:
    """ISO 8601 exactly as PostgreSQL's JSON writes it (no trailing zeros in the fraction),
    so a value reads the same whether PostgreSQL or Python built the response."""
    text = value.isoformat()
    if isinstance(value, datetime) and value.microsecond:
        head, _, rest = text.partition(".")
        digits = rest[:6].rstrip("0")
        text = f"{head}.{digits}{rest[6:]}"
    return text


def jsonable(row: dict | None) -> dict | None:
    if row is None:
        return None
    return {k: (timestamp(v) if isinstance(v, (datetime, date)) else v) for k, v in row.items()}


async def one(conn, query, params=None) -> dict | None:
    cur = await conn.execute(query, params)
    return await cur.fetchone()


async def all_rows(conn, query, params=None) -> list[dict]:
    cur = await conn.execute(query, params)
    return await cur.fetchall()


# --- users and tokens -------------------------------------------------------------------


async def user_for_token(conn, token_hash: str) -> dict | None:
    from app.tokens import LOOKUP_SQL

    return await one(conn, LOOKUP_SQL, [token_hash])


async def touch_token(conn, token_id: str) -> None:
    """Record use, at most every 5 minutes: one write per token, not one per request."""
    await conn.execute(
        'UPDATE api_tokens SET "lastUsedAt" = now() WHERE id = %s AND '
        '("lastUsedAt" IS NULL OR "lastUsedAt" < now() - interval \'5 minutes\')',
        [token_id],
    )


# --- projects ---------------------------------------------------------------------------

# PostgreSQL builds the project documents (json_agg): one round trip, and no Python
# objects per avatar field. Sessions run in UTC (see main.py), so timestamps read
# 2025-10-12T08:40:00.1234+00:00, which is also what jsonable() writes.
_PROJECT_JSON = """
json_build_object('id', p.id, 'userId', p."userId", 'name', p.name, 'description', p.description,
                  'createdAt', p."createdAt", 'updatedAt', p."updatedAt",
                  'avatars', coalesce(a.avatars, '[]'::json), 'avatarCount', coalesce(a.n, 0))
"""
_AVATARS_OF_P = f"""
LEFT JOIN LATERAL (
    SELECT json_agg(av ORDER BY av."createdAt" DESC, av.id) AS avatars, count(*) AS n
    FROM (SELECT {AVATAR_COLUMNS} FROM avatars WHERE "projectId" = p.id) av
) a ON true
"""
LIST_PROJECTS_SQL = f"""
SELECT coalesce(json_agg(x.doc ORDER BY x."createdAt" DESC, x.id), '[]'::json)::text AS body
FROM (SELECT p.id, p."createdAt", {_PROJECT_JSON} AS doc
      FROM avatar_projects p {_AVATARS_OF_P}
      WHERE p."userId" = %s
      ORDER BY p."createdAt" DESC, p.id LIMIT %s OFFSET %s) x
"""
GET_PROJECT_SQL = f"""
SELECT {_PROJECT_JSON}::text AS body
FROM avatar_projects p {_AVATARS_OF_P}
WHERE p.id = %s AND p."userId" = %s
"""


async def list_projects_json(conn, user_id: str, limit: int, offset: int) -> str:
    """The user's projects with their avatars, newest first, as a JSON array (text)."""
    return (await one(conn, LIST_PROJECTS_SQL, [user_id, limit, offset]))["body"]


async def get_project_json(conn, user_id: str, project_id: str) -> str | None:
    row = await one(conn, GET_PROJECT_SQL, [project_id, user_id])
    return None if row is None else row["body"]


def project_body(project: dict, avatars: list) -> dict:
    body = jsonable(project)
    body["avatars"] = avatars
    body["avatarCount"] = len(avatars)
    return body


async def get_project(conn, user_id: str, project_id: str) -> dict | None:
    import json

    text = await get_project_json(conn, user_id, project_id)
    return None if text is None else json.loads(text)


async def create_project(conn, user_id: str, name: str, description: str | None) -> dict:
    row = await one(
        conn,
        f'INSERT INTO avatar_projects ("userId", name, description) '
        f"VALUES (%s, %s, %s) RETURNING {PROJECT_COLUMNS}",
        [user_id, name, description],
    )
    return project_body(row, [])


async def update_project(conn, user_id: str, project_id: str, changes: dict) -> dict | None:
    assignments = [
        sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k))
        for k in ("name", "description")
        if k in changes
    ]
    query = sql.SQL(
        'UPDATE avatar_projects SET {}, "updatedAt" = now() '
        'WHERE id = %(id)s AND "userId" = %(user_id)s RETURNING id'
    ).format(sql.SQL(", ").join(assignments))
    row = await one(conn, query, {**changes, "id": project_id, "user_id": user_id})
    return None if row is None else await get_project(conn, user_id, project_id)


async def delete_project(conn, user_id: str, project_id: str) -> int | None:
    """Delete a project and (ON DELETE CASCADE) its avatars and generations.
    Returns how many avatars went with it, None when the project is not the user's."""
    row = await one(
        conn,
        'WITH gone AS (DELETE FROM avatar_projects WHERE id = %s AND "userId" = %s '
        "RETURNING id) SELECT (SELECT count(*) FROM gone) AS deleted, "
        '(SELECT count(*) FROM avatars WHERE "projectId" = %s) AS avatars',
        [project_id, user_id, project_id],
    )
    # The CTE's DELETE is not visible to the sibling count: it counts the avatars before.
    return row["avatars"] if row["deleted"] else None


# --- avatars ----------------------------------------------------------------------------


async def insert_avatar(
    conn, user_id: str, project_id: str, values: dict, action: str
) -> dict | None:
    """Insert an avatar into the user's project (None when it is not theirs) and record
    its creation in avatar_usage_history, in the caller's transaction."""
    columns = ["userId", "projectId", *values]
    query = sql.SQL(
        "INSERT INTO avatars ({cols}) SELECT %(userId)s, p.id, {vals} "
        'FROM avatar_projects p WHERE p.id = %(projectId)s AND p."userId" = %(userId)s '
        "RETURNING {ret}"
    ).format(
        cols=sql.SQL(", ").join(map(sql.Identifier, columns)),
        vals=sql.SQL(", ").join(sql.Placeholder(k) for k in values),
        ret=sql.SQL(AVATAR_COLUMNS),
    )
    avatar = await one(conn, query, {**values, "userId": user_id, "projectId": project_id})
    if avatar is not None:
        await conn.execute(
            'INSERT INTO avatar_usage_history ("avatarId", "userId", "appId", action, metadata) '
            "VALUES (%s, %s, %s, %s, %s)",
            [avatar["id"], user_id, APP_ID, action, Jsonb({"projectId": project_id})],
        )
    return avatar


async def get_avatar(conn, user_id: str, avatar_id: str) -> dict | None:
    return await one(
        conn,
        f'SELECT {AVATAR_COLUMNS} FROM avatars WHERE id = %s AND "userId" = %s',
        [avatar_id, user_id],
    )


async def delete_avatar(conn, user_id: str, avatar_id: str) -> bool:
    row = await one(
        conn,
        'DELETE FROM avatars WHERE id = %s AND "userId" = %s RETURNING id',
        [avatar_id, user_id],
    )
    return row is not None


# --- models, credits and generations ----------------------------------------------------


async def enabled_models(conn) -> list[dict]:
    return await all_rows(
        conn,
        f"SELECT {MODEL_COLUMNS} FROM ai_models "
        f'WHERE "appId" = %s AND enabled ORDER BY {MODEL_ORDER}',
        [APP_ID],
    )


async def count_enabled_models(conn) -> int:
    row = await one(
        conn, 'SELECT count(*) AS n FROM ai_models WHERE "appId" = %s AND enabled', [APP_ID]
    )
    return row["n"]


async def pick_model(conn) -> dict | None:
    return await one(
        conn,
        f'SELECT {MODEL_COLUMNS} FROM ai_models WHERE "appId" = %s AND enabled '
        f"ORDER BY {MODEL_ORDER} LIMIT 1",
        [APP_ID],
    )


async def lock_project(conn, user_id: str, project_id: str) -> bool:
    """The user's project, locked against deletion until the transaction ends."""
    row = await one(
        conn,
        'SELECT id FROM avatar_projects WHERE id = %s AND "userId" = %s FOR KEY SHARE',
        [project_id, user_id],
    )
    return row is not None


CHARGE_SQL = """
UPDATE users
SET "creditBalance" = "creditBalance" - CASE WHEN "unlimitedUntil" > now() THEN 0 ELSE %(cost)s END,
    "updatedAt" = now()
WHERE id = %(id)s AND ("unlimitedUntil" > now() OR "creditBalance" >= %(cost)s)
RETURNING "creditBalance", CASE WHEN "unlimitedUntil" > now() THEN 0 ELSE %(cost)s END AS charged
"""


async def charge(conn, user_id: str, cost: int) -> dict | None:
    """Take `cost` credits (none while "unlimitedUntil" is ahead) if the balance covers it.

    One UPDATE: concurrent charges of one user queue on the row lock, and each re-checks
    the balance it finds once it holds the lock, so the balance never goes below zero and
    no two requests spend the same credits. None when the balance is too low.
    """
    return await one(conn, CHARGE_SQL, {"id": user_id, "cost": cost})


async def balance(conn, user_id: str) -> int:
    return (await one(conn, 'SELECT "creditBalance" FROM users WHERE id = %s', [user_id]))[
        "creditBalance"
    ]


async def refund(conn, user_id: str, amount: int) -> None:
    if amount:
        await conn.execute(
            'UPDATE users SET "creditBalance" = "creditBalance" + %s, '
            '"updatedAt" = now() WHERE id = %s',
            [amount, user_id],
        )


async def insert_generation(
    conn, user_id: str, project_id: str, prompt: str, options: dict
) -> dict:
    return await one(
        conn,
        f'INSERT INTO avatar_generations ("userId", "projectId", status, prompt, '
        f"options) VALUES (%s, %s, %s, %s, %s) RETURNING {GENERATION_COLUMNS}",
        [user_id, project_id, "pending", prompt, Jsonb(options)],
    )


async def get_generation(conn, user_id: str, generation_id: str) -> dict | None:
    return await one(
        conn,
        f'SELECT {GENERATION_COLUMNS} FROM avatar_generations WHERE id = %s AND "userId" = %s',
        [generation_id, user_id],
    )


def generation_body(row: dict, avatar: dict | None = None) -> dict:
    options = row.get("options") or {}
    body = {
        "id": row["id"],
        "projectId": row["projectId"],
        "avatarId": row["avatarId"],
        "status": row["status"],
        "prompt": row["prompt"],
        "name": options.get("name"),
        "modelKey": options.get("modelKey"),
        "creditUsed": options.get("creditUsed"),
        "seed": options.get("seed"),
        "errorMessage": row["errorMessage"],
        "createdAt": row["createdAt"],
        "completedAt": row["completedAt"],
    }
    if avatar is not None:
        body["avatar"] = jsonable(avatar)
    return jsonable(body)
