"""What the app needs from the database, and how it finds out what is missing.

REQUIRED lists every table and column the code reads or writes. When a query fails with
"relation/column does not exist", the error names exactly what is missing by comparing
REQUIRED with the catalog (incident 3 was 18 columns missing with a bare 500).
"""

from __future__ import annotations

from app import SCHEMA_VERSION

REQUIRED: dict[str, tuple[str, ...]] = {
    "users": (
        "id",
        "email",
        "name",
        "creditBalance",
        "accountType",
        "subscriptionTier",
        "unlimitedUntil",
        "createdAt",
        "updatedAt",
    ),
    "ai_models": (
        "id",
        "appId",
        "modelId",
        "modelKey",
        "name",
        "description",
        "provider",
        "tier",
        "creditCost",
        "capabilities",
        "enabled",
        "displayOrder",
    ),
    "avatar_projects": ("id", "userId", "name", "description", "createdAt", "updatedAt"),
    "avatars": (
        "id",
        "userId",
        "projectId",
        "name",
        "baseImageUrl",
        "thumbnailUrl",
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
        "sourceType",
        "generationPrompt",
        "seedUsed",
        "usageCount",
        "lastUsedAt",
        "createdAt",
        "updatedAt",
    ),
    "avatar_generations": (
        "id",
        "userId",
        "avatarId",
        "projectId",
        "status",
        "prompt",
        "options",
        "errorMessage",
        "createdAt",
        "completedAt",
    ),
    "avatar_usage_history": (
        "id",
        "avatarId",
        "userId",
        "appId",
        "action",
        "metadata",
        "createdAt",
    ),
    "api_tokens": (
        "id",
        "userId",
        "name",
        "tokenHash",
        "tokenPrefix",
        "createdAt",
        "lastUsedAt",
        "expiresAt",
        "revokedAt",
    ),
}

# pg_catalog rather than information_schema: the latter hides columns the role may not use.
COLUMNS_SQL = """
SELECT c.relname AS table, a.attname AS column
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relnamespace = current_schema()::regnamespace
  AND c.relkind IN ('r', 'p')
  AND c.relname = ANY(%s)
"""

# The successful migrations with their phase (shipshape writes it: `-- shipshape:phase`).
HISTORY_SQL = "SELECT version, phase FROM shipshape.history WHERE success ORDER BY version"
HISTORY_EXISTS_SQL = "SELECT to_regclass('shipshape.history') IS NOT NULL AS exists"


async def missing_objects(conn) -> list[str]:
    """Every required table and column absent from the database, e.g.
    ['table api_tokens', 'column avatar_generations."projectId"']."""
    cur = await conn.execute(COLUMNS_SQL, [list(REQUIRED)])
    present: dict[str, set[str]] = {}
    for row in await cur.fetchall():
        present.setdefault(row["table"], set()).add(row["column"])
    missing = []
    for table, columns in REQUIRED.items():
        if table not in present:
            missing.append(f"table {table}")
            continue
        missing.extend(f'column {table}."{c}"' for c in columns if c not in present[table])
    return missing


async def applied_migrations(conn) -> dict[int, str] | None:
    """{version: phase} of the successful migrations; None when there is no history."""
    cur = await conn.execute(HISTORY_EXISTS_SQL)
    if not (await cur.fetchone())["exists"]:
        return None
    cur = await conn.execute(HISTORY_SQL)
    return {row["version"]: row["phase"] for row in await cur.fetchall()}


def version_problem(
    applied: dict[int, str] | None, deploy_command: str, release: int = SCHEMA_VERSION, *,
    doctor_command: str | None = None,
) -> str | None:
    """None when this release can serve the database, else what is wrong and what to run.

    Readiness over a compatible range (zero-downtime deploys): release R is ready when
    migration R (and so everything before it) is applied and no *contract* migration after
    R is: expand migrations after R keep R working, a contract one breaks it.

    No history at all is ambiguous (a new database, or one whose history table is gone
    while its tables are there): doctor_command tells which."""
    if not applied:
        return (
            f"database has no applied migrations (no shipshape.history rows), "
            f"app needs {release}: run `{doctor_command or deploy_command}`"
        )
    newest = max(applied)
    if release not in applied:
        return f"database at version {newest}, app needs {release}: run `{deploy_command}`"
    contracts = [v for v, phase in applied.items() if v > release and phase == "contract"]
    if contracts:
        return (
            f"database at version {newest}, app needs {release}: contract migration "
            f"{contracts[0]} is applied, which breaks releases before it; deploy the app "
            f"release built for version {newest}"
        )
    return None
