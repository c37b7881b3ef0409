"""One module per component: an args dataclass and a ComponentResource (children parent=self)."""

from infra.components.app import App, AppArgs
from infra.components.database import Database, DatabaseArgs
from infra.components.gate import MigrationGate, MigrationGateArgs
from infra.components.network import Network, NetworkArgs

__all__ = ["App", "AppArgs", "Database", "DatabaseArgs", "MigrationGate", "MigrationGateArgs",
           "Network", "NetworkArgs"]
