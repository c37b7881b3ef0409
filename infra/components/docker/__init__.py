"""The docker platform: one Docker engine (the host the stack's runner is on) runs the
stack's network, its PostgreSQL container, and the app containers; the migration gate is a
dynamic provider that runs shipshape's deploy from the machine running Pulumi.

The five functions are the platform's half of the one graph infra/__main__.py wires
(network -> database -> migration gate -> app, then the outputs); kubernetes/ has the same
five, and a fleet() that renders something (here it is always None).
"""

from __future__ import annotations

import pulumi

from infra.components import images
from infra.components.docker.app import App, AppArgs
from infra.components.docker.database import Database, DatabaseArgs, dsn
from infra.components.docker.gate import MigrationGate, MigrationGateArgs
from infra.components.docker.network import Network, NetworkArgs
from infra.config import StackConfig
from shipshape import outputs as names

__all__ = ["App", "AppArgs", "Database", "DatabaseArgs", "MigrationGate", "MigrationGateArgs",
           "Network", "NetworkArgs", "network", "database", "gate", "fleet", "app", "outputs"]


def network(cfg: StackConfig) -> Network:
    return Network("network", NetworkArgs(env=cfg.name))


def database(cfg: StackConfig, network: Network) -> Database:
    return Database("database", DatabaseArgs(
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


def gate(cfg: StackConfig, network: Network, database: Database) -> MigrationGate:
    return MigrationGate("migration-gate", MigrationGateArgs(
        env=cfg.env,
        sql_dir=cfg.sql_dir,
        admin_dsn=database.admin_dsn,
        app_password=cfg.app_db_password,
        database=database.container,
        database_id=database.identity,
    ))


def fleet(cfg: StackConfig, network: Network, gate: MigrationGate, app: App) -> None:
    """A fleet Job is the kubernetes platform's (its keys are refused here): none."""
    return None


def app(cfg: StackConfig, network: Network, database: Database, gate: MigrationGate) -> App:
    """The app replicas, then the contract gate after all of them (issue #12)."""
    app = App("app", AppArgs(
        env=cfg.name,
        profile=cfg.profile,
        project_dir=cfg.project_dir,
        network_name=network.name,
        database_host=database.internal_host,
        database=cfg.database,
        app_role=cfg.app_role,
        app_password=cfg.app_db_password,
        gate=gate.resource,
        image=images.app_source(cfg),
        port=cfg.app_port,
        bind_address=cfg.app_bind_address,
        replicas=cfg.app_replicas,
        generation_provider=cfg.generation_provider,
        huggingface_api_key=cfg.huggingface_api_key,
    ))
    app.contract_gate = MigrationGate("contract-gate", MigrationGateArgs(
        env=cfg.env,
        sql_dir=cfg.sql_dir,
        admin_dsn=database.admin_dsn,
        app_password=None,  # the expand gate gave the app role its login
        database=database.container,
        database_id=database.identity,
        phase="contract",
        after=list(app.containers),
    ))
    return app


def outputs(cfg: StackConfig, network: Network, database: Database, gate: MigrationGate,
            app: App) -> dict:
    return {
        names.APP_URL: app.url,
        names.DATABASE_ENDPOINT: database.endpoint,
        names.SCHEMA_VERSION: gate.schema_version,
        names.DATABASE_URL: database.admin_dsn,
        names.APP_DATABASE_URL: pulumi.Output.secret(cfg.app_db_password).apply(
            lambda password: dsn(cfg.app_role, password, cfg.db_host, cfg.db_port, cfg.database)),
        names.APP_IMAGE: app.image_digest,
    }
