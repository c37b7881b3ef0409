"""The Pulumi stack's output names: one list shared by infra/, the tasks and the tests.

infra/__main__.py exports exactly these; `invoke infra.outputs` prints them; `deploy --env X`
reads DATABASE_URL when no --dsn or DATABASE_URL environment variable is given.
"""

APP_URL = "app_url"                      # http://<bind address>:<port> of the first app replica
DATABASE_ENDPOINT = "database_endpoint"  # host:port where the database is published
SCHEMA_VERSION = "schema_version"        # the version the migration gate left the database at
DATABASE_URL = "database_url"            # secret: the migration DSN shipshape's tasks use
APP_DATABASE_URL = "app_database_url"    # secret: the app role's DSN, as reachable from the host
APP_IMAGE = "app_image"                  # the app image dev built (repo@sha256:... once pushed):
                                         # what staging and prod set as shipshape:app_image
GATE_IMAGE = "gate_image"                # kubernetes: the tools image the migration gate Job runs

ALL = (APP_URL, DATABASE_ENDPOINT, SCHEMA_VERSION, DATABASE_URL, APP_DATABASE_URL, APP_IMAGE)
# A cluster's gate is a Job, which returns no value: the schema version is the image's (the
# app's /health/ready compares it), and the gate's image is exported for promotion instead.
KUBERNETES = tuple(name for name in ALL if name != SCHEMA_VERSION) + (GATE_IMAGE,)
SECRET = frozenset({DATABASE_URL, APP_DATABASE_URL})
