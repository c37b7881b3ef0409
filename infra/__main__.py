"""The stack: network -> database (healthy) -> migration gate -> app. Only wiring here."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `infra` and `shipshape`

import pulumi

from infra import config
from infra.components import (
    App,
    AppArgs,
    Database,
    DatabaseArgs,
    MigrationGate,
    MigrationGateArgs,
    Network,
    NetworkArgs,
)
from infra.components.database import dsn
from shipshape import outputs

cfg = config.load()

network = Network("network", NetworkArgs(env=cfg.name))

database = Database("database", DatabaseArgs(
    env=cfg.name,
    image=cfg.postgres_image,
    database=cfg.database,
    superuser=cfg.db_superuser,
    superuser_password=cfg.db_superuser_password,
    network_name=network.name,
    port=cfg.db_port,
    bind_address=cfg.db_bind_address,
    host=cfg.db_host,
    protect_data=cfg.protect_data,
))

gate = MigrationGate("migration-gate", MigrationGateArgs(
    env=cfg.env,
    sql_dir=cfg.sql_dir,
    admin_dsn=database.admin_dsn,
    app_password=cfg.app_db_password,
    database=database.container,
))

app = App("app", AppArgs(
    env=cfg.name,
    project_dir=cfg.project_dir,
    network_name=network.name,
    database_host=database.internal_host,
    database=cfg.database,
    app_role=cfg.app_role,
    app_password=cfg.app_db_password,
    gate=gate.resource,
    image=cfg.app_image,
    port=cfg.app_port,
    bind_address=cfg.app_bind_address,
    replicas=cfg.app_replicas,
    generation_provider=cfg.generation_provider,
    huggingface_api_key=cfg.huggingface_api_key,
))

pulumi.export(outputs.APP_URL, app.url)
pulumi.export(outputs.DATABASE_ENDPOINT, database.endpoint)
pulumi.export(outputs.SCHEMA_VERSION, gate.schema_version)
pulumi.export(outputs.DATABASE_URL, database.admin_dsn)
pulumi.export(outputs.APP_DATABASE_URL, pulumi.Output.secret(cfg.app_db_password).apply(
    lambda password: dsn(cfg.app_role, password, cfg.db_host, cfg.db_port, cfg.database)))
