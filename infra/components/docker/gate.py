"""The docker platform's migration gate: shipshape's own migrate -> seed -> verify, as a
Pulumi resource. (The kubernetes platform runs the same deploy as a Job in the cluster:
kubernetes/gate.py.)

Mechanism: a Python dynamic provider (pulumi.dynamic.ResourceProvider). Why, over the two
other candidates:

- pulumi-command (`command.local.Command` running `invoke deploy`) re-runs on changes of
  its `triggers`, but it only sees a shell command: the schema version would have to be
  parsed back out of stdout, the secrets would travel as environment strings through a
  shell, and it adds a provider plugin binary that must be downloaded (impossible here,
  and one more moving part in CI).
- a one-shot container (the app image running `invoke deploy`) needs an image that holds
  shipshape and the SQL tree, a registry pull on every machine, and Docker's Container
  resource can wait for a one-shot container (attach=true) but is not made to fail the
  update on its exit code, nor to return a value such as the schema version.
- the dynamic provider runs in the Pulumi program's own virtualenv, where shipshape is
  installed: it calls `shipshape.pulumi_gate.gate` directly (the same code as `invoke deploy`, tested
  against PostgreSQL without Pulumi), returns the schema version as a real output, fails
  the update by raising the gate's own error, and its `diff` decides re-runs from the
  inputs: the checksums of the rendered migrations, seeds and checks. Its known cost, the
  provider class being pickled into the state, by reference when it is defined outside
  __main__ (pulumi/pulumi#7453), is why the class is in the installed package
  (shipshape/pulumi_gate/provider.py): importable wherever the provider runs, stateless, and
  delegating to shipshape.pulumi_gate.gate.

`delete` does nothing: the schema lives in the database's volume and goes with it. The
secret inputs (the superuser DSN, the app role's password) are inputs only, secret in the
state; the outputs never copy them (shipshape.pulumi_gate.gate.OUTPUTS: a salted verifier stands in
for the password, so that a new one still re-runs the gate).

Two gates per stack (issue #12): `migration-gate` runs the expand phase before the app
containers; `contract-gate` runs the contract phase after every app replica (it depends on
all of them), with the same provider and `deploy_phase` = contract. While a replica of an
older release is still alive (Pulumi deletes replaced containers only when the update
ends), the contract gate defers instead of failing, and the next update runs it again.

One input is the database container's id: a database that was recreated (a new container,
maybe on a new volume) is a database the gate has not seen, so the gate runs again even
when the SQL tree is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi.dynamic

from shipshape.pulumi_gate.provider import MigrationGateProvider
from shipshape.settings import Environment

OUTPUTS = ("schema_version", "applied", "gates", "app_login", "app_password_check", "deferred")


class MigrationGateResource(pulumi.dynamic.Resource, module="shipshape", name="MigrationGate"):
    schema_version: pulumi.Output[int]
    applied: pulumi.Output[list]
    gates: pulumi.Output[dict]
    app_login: pulumi.Output[bool]

    def __init__(self, name: str, props: dict, opts: pulumi.ResourceOptions | None = None):
        super().__init__(MigrationGateProvider(), name, {**props, **{k: None for k in OUTPUTS}}, opts)


@dataclass
class MigrationGateArgs:
    env: Environment
    sql_dir: Path
    admin_dsn: pulumi.Input[str]      # secret
    app_password: pulumi.Input[str]   # secret
    database: pulumi.Resource         # the healthy database container the gate waits for
    database_id: pulumi.Input[str]    # that container's id: a new database re-runs the gate
    phase: str = "expand"             # expand (before the app) or contract (after it)
    after: list = field(default_factory=list)  # what else it waits for: every app replica


class MigrationGate(pulumi.ComponentResource):
    resource: MigrationGateResource
    schema_version: pulumi.Output[int]
    checksums: dict

    def __init__(self, name: str, args: MigrationGateArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("shipshape:infra:MigrationGate", name, None, opts)
        from shipshape.pulumi_gate import gate

        self.checksums = gate.checksums(args.env, args.sql_dir)
        settings = args.env.context()
        settings.pop("name", None)
        settings["app_url"] = ""
        settings["deploy_phase"] = args.phase
        self.resource = MigrationGateResource(
            name,
            {
                "env": args.env.name,
                "settings": settings,
                "sql_dir": str(args.sql_dir),
                "checksums": self.checksums,
                "database_id": args.database_id,
                "admin_dsn": pulumi.Output.secret(args.admin_dsn),
                "app_role": args.env.app_role,
                "app_password": pulumi.Output.secret(args.app_password or ""),
            },
            pulumi.ResourceOptions(parent=self, depends_on=[args.database, *args.after],
                                   # belt and braces: provider_apply returns neither
                                   additional_secret_outputs=[*gate.SECRET_PROPS, "app_password_check"]),
        )
        self.schema_version = self.resource.schema_version
        self.register_outputs({"schema_version": self.schema_version})
