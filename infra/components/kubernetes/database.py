"""The kubernetes platform's database: a CloudNativePG `Cluster` (shipshape:db_provider:
cloudnativepg, the default), or an external managed PostgreSQL (external), whose superuser
DSN is the stack secret shipshape:database_url. Never a hand-rolled StatefulSet: failover,
replication, backups and minor upgrades are the operator's (or the provider's) job.

CloudNativePG:
- the operator must be installed in the cluster (its CRDs and controller); this program
  creates the Cluster custom resource (apiVersion postgresql.cnpg.io/v1), not the operator.
- `pulumi.com/waitFor: condition=Ready`: pulumi-kubernetes has no built-in readiness for a
  custom resource and would report it created at once; with the annotation (4.18+) it waits
  for the Cluster's Ready condition, so the migration gate starts against a server that
  accepts connections, as the docker platform's pg_isready healthcheck does.
- the superuser is enabled (enableSuperuserAccess) with its password from a Pulumi secret
  (a basic-auth Secret): the gate creates the app role and its grants, which needs more
  than the database owner CloudNativePG creates. The app never connects as it.
- the operator's services are ClusterIP (`<cluster>-rw` is the primary): the database is
  reachable inside the cluster only; the policy pack refuses a LoadBalancer or NodePort in
  front of it, including one declared through the Cluster's managed services.
- protect_data protects the Cluster: its PVCs are owned by it and go when it goes.

The identity the gate watches is the Cluster's uid (a recreated Cluster is an empty
database), or, for an external server, a digest of its host, port and database name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import pulumi
import pulumi_kubernetes as k8s

from infra.components.kubernetes.common import labels, secret
from infra.config import Resources, StackConfig, dsn_parts

CLUSTER_NAME = "avatar-db"
PORT = 5432
# The instances' own requests and limits: the policy pack requires limits on every pod.
DB_RESOURCES = Resources(cpu_request="250m", cpu_limit="2", memory_request="512Mi", memory_limit="2Gi")


def dsn(user: str, password: str, host: str, port: int, database: str, query: str = "") -> str:
    base = f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{quote(database, safe='')}"
    return f"{base}?{query}" if query else base


def with_user(admin_dsn: str, user: str, password: str) -> str:
    """The same server, database and options (sslmode...) as admin_dsn, as another user."""
    parts = urlsplit(admin_dsn)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass
class DatabaseArgs:
    cfg: StackConfig
    namespace: pulumi.Input[str]


class Database(pulumi.ComponentResource):
    resource: pulumi.Resource | None   # what the gate waits for (None: an external server)
    admin_dsn: pulumi.Output[str]      # secret: the superuser DSN, as the cluster reaches it
    app_dsn: pulumi.Output[str]        # secret: the app role's DSN, as the cluster reaches it
    endpoint: pulumi.Output[str]       # host:port, not secret
    identity: pulumi.Output[str]       # changes when the database is another one

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("shipshape:infra:Database", name, None, opts)
        cfg = args.cfg
        if cfg.db_provider == "external":
            self._external(cfg)
        else:
            self._cloudnativepg(name, cfg, args.namespace)
        self.register_outputs({"endpoint": self.endpoint})

    def _external(self, cfg: StackConfig) -> None:
        self.resource = None
        self.admin_dsn = pulumi.Output.secret(cfg.database_url)
        self.app_dsn = pulumi.Output.secret(pulumi.Output.all(cfg.database_url, cfg.app_db_password).apply(
            lambda v: with_user(v[0], cfg.app_role, v[1])))
        parts = self.admin_dsn.apply(dsn_parts)
        # Host, port and database name are not secrets; derived from the secret DSN they
        # would be marked secret, which would make the whole gate Job's spec secret.
        self.endpoint = pulumi.Output.unsecret(parts.apply(lambda p: f"{p[0]}:{p[1]}"))
        self.identity = pulumi.Output.unsecret(parts.apply(
            lambda p: hashlib.sha256(f"{p[0]}:{p[1]}/{p[2]}".encode()).hexdigest()[:32]))

    def _cloudnativepg(self, name: str, cfg: StackConfig, namespace: pulumi.Input[str]) -> None:
        superuser = secret(f"{name}-superuser", cfg, namespace,
                           {"username": cfg.db_superuser, "password": cfg.db_superuser_password},
                           component="database", parent=self, type_="kubernetes.io/basic-auth")
        storage = {"size": cfg.db_storage_size}
        if cfg.db_storage_class:
            storage["storageClass"] = cfg.db_storage_class
        self.resource = k8s.apiextensions.CustomResource(
            name,
            api_version="postgresql.cnpg.io/v1",
            kind="Cluster",
            metadata={
                "name": CLUSTER_NAME,
                "namespace": namespace,
                "labels": labels(cfg, "postgresql", "database"),
                "annotations": {"pulumi.com/waitFor": "condition=Ready"},
            },
            spec={
                "instances": cfg.db_instances,
                "imageName": cfg.postgres_image,
                "primaryUpdateStrategy": "unsupervised",
                "enableSuperuserAccess": True,
                "superuserSecret": {"name": superuser.metadata.name},
                "bootstrap": {"initdb": {"database": cfg.database, "owner": cfg.database}},
                "storage": storage,
                "resources": {
                    "requests": {"cpu": DB_RESOURCES.cpu_request, "memory": DB_RESOURCES.memory_request},
                    "limits": {"cpu": DB_RESOURCES.cpu_limit, "memory": DB_RESOURCES.memory_limit},
                },
            },
            opts=pulumi.ResourceOptions(parent=self, protect=cfg.protect_data,
                                        # a first start (initdb, replicas) takes a while
                                        custom_timeouts=pulumi.CustomTimeouts(create="20m", update="20m")),
        )
        host = pulumi.Output.concat(f"{CLUSTER_NAME}-rw.", namespace, ".svc")
        self.endpoint = pulumi.Output.concat(host, f":{PORT}")
        self.admin_dsn = pulumi.Output.secret(pulumi.Output.all(host, cfg.db_superuser_password).apply(
            lambda v: dsn(cfg.db_superuser, v[1], v[0], PORT, cfg.database)))
        self.app_dsn = pulumi.Output.secret(pulumi.Output.all(host, cfg.app_db_password).apply(
            lambda v: dsn(cfg.app_role, v[1], v[0], PORT, cfg.database)))
        self.identity = self.resource.metadata.apply(lambda m: (m or {}).get("uid") or "")
