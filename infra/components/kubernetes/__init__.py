"""The kubernetes platform: the stack's namespace in the cluster its stack file names, the
database as a CloudNativePG Cluster or an external managed PostgreSQL, the migration gate as
a Job running shipshape's deploy from a tools image, and the app as a Deployment behind a
Service, with a PodDisruptionBudget and an optional HorizontalPodAutoscaler.

The same functions as docker/: network -> database -> gate -> app (and, after the app's
rollout, the contract gate: `deploy --phase contract` as a second Job), then the outputs; and
fleet(), a database fleet when shipshape:fleet_file is set: an Indexed Job of each phase,
expand after the gate, contract after the app's rollout (fleet.py).
Every resource goes through the provider the namespace component makes (the stack's
k8s_context), passed down as the components' provider.
"""

from __future__ import annotations

import pulumi

from infra.components.kubernetes.app import App, AppArgs
from infra.components.kubernetes.database import Database, DatabaseArgs
from infra.components.kubernetes.fleet import FleetJob, FleetJobArgs
from infra.components.kubernetes.gate import (
    ContractGate,
    ContractGateArgs,
    MigrationGate,
    MigrationGateArgs,
)
from infra.components.kubernetes.namespace import Network, NetworkArgs
from infra.config import StackConfig
from shipshape import outputs as names

__all__ = ["App", "AppArgs", "ContractGate", "ContractGateArgs", "Database", "DatabaseArgs",
           "FleetJob", "FleetJobArgs", "MigrationGate", "MigrationGateArgs", "Network", "NetworkArgs", "network", "database",
           "gate", "fleet", "app", "outputs"]


def _on(network: Network) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(providers=[network.provider])


def network(cfg: StackConfig) -> Network:
    return Network("network", NetworkArgs(cfg))


def database(cfg: StackConfig, network: Network) -> Database:
    return Database("database", DatabaseArgs(cfg, network.name), _on(network))


def gate(cfg: StackConfig, network: Network, database: Database) -> MigrationGate:
    return MigrationGate("migration-gate", MigrationGateArgs(
        cfg=cfg, namespace=network.name, admin_dsn=database.admin_dsn,
        database=database.resource, database_id=database.identity), _on(network))


def fleet(cfg: StackConfig, network: Network, gate: MigrationGate, app: App) -> FleetJob | None:
    """Optional (shipshape:fleet_file): the fleet as two Indexed Jobs, expand after the
    gate, contract after the app's rollout and the expand Job."""
    if cfg.fleet_file is None:
        return None
    return FleetJob("fleet", FleetJobArgs(cfg=cfg, namespace=network.name, image=gate.image,
                                          gate=gate.resource, deployment=app.deployment,
                                          app_image=app.image_ref), _on(network))


def app(cfg: StackConfig, network: Network, database: Database, gate: MigrationGate) -> App:
    """The Deployment after the expand gate, then the contract gate after its rollout."""
    app = App("app", AppArgs(cfg=cfg, namespace=network.name, app_dsn=database.app_dsn,
                             gate=gate.resource), _on(network))
    app.contract_gate = ContractGate("contract-gate", ContractGateArgs(
        cfg=cfg, namespace=network.name, admin_dsn=database.admin_dsn, image=gate.image,
        database_id=database.identity, deployment=app.deployment,
        app_image=app.image_ref), _on(network))
    return app


def outputs(cfg: StackConfig, network: Network, database: Database, gate: MigrationGate,
            app: App) -> dict:
    return {
        names.APP_URL: app.url,
        names.DATABASE_ENDPOINT: database.endpoint,
        # As the cluster reaches it: from elsewhere, through `kubectl port-forward` (README).
        names.DATABASE_URL: database.admin_dsn,
        names.APP_DATABASE_URL: database.app_dsn,
        names.APP_IMAGE: app.image_digest,
        names.GATE_IMAGE: gate.image_digest,
    }
