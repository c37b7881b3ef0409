"""The Avatar Creator API.

A FastAPI service on PostgreSQL (psycopg 3 and a connection pool). It imports nothing from
shipshape: it knows the schema version it was built for (SCHEMA_VERSION, the highest
migration it needs; its release) and compares it with the database's shipshape.history
on /health/ready, and it records its release in shipshape.app_instances (app/instances.py)
so that a deploy knows which releases run. Kept import-light: `python -m app token ...` must not pay for FastAPI.
"""

__version__ = "0.1.0"

#: The highest migration (sql/migrations/NNNN_*) this code needs: 0012_app_instances.
#: APP_SCHEMA_VERSION overrides it (app.config), to run a build as another release.
SCHEMA_VERSION = 12

#: The app id of the Avatar Creator in ai_models."appId" and avatar_usage_history.
APP_ID = "avatar-creator"

#: The models seeds/ai_models.yaml declares for this app (incident 1's "expected: 4").
EXPECTED_MODEL_COUNT = 4
