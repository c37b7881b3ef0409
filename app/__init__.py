"""The Avatar Creator API.

A FastAPI service on PostgreSQL (psycopg 3 and a connection pool). It imports nothing from
shipshape: it knows the schema version it was built for (SCHEMA_VERSION, the highest
migration it needs) and compares it with the database's shipshape.history on
/health/ready. Kept import-light: `python -m app token ...` must not pay for FastAPI.
"""

__version__ = "0.1.0"

#: The highest migration (sql/migrations/NNNN_*) this code needs: 0011_api_tokens.
SCHEMA_VERSION = 11

#: The app id of the Avatar Creator in ai_models."appId" and avatar_usage_history.
APP_ID = "avatar-creator"

#: The models seeds/ai_models.yaml declares for this app (incident 1's "expected: 4").
EXPECTED_MODEL_COUNT = 4
