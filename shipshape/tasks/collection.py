"""The Invoke namespace: every task collection, as `invoke --list` shows it."""

from invoke import Collection

from shipshape.tasks import app, db, deploy, doctor, fleet, infra, runbook, stack

namespace = Collection(stack.up, stack.down, deploy.deploy, deploy.render, doctor.doctor)
namespace.add_collection(Collection.from_module(db, name="db"))
namespace.add_collection(Collection.from_module(app, name="app"))
namespace.add_collection(Collection.from_module(infra, name="infra"))
namespace.add_collection(Collection.from_module(runbook, name="runbook"))
namespace.add_collection(Collection.from_module(fleet, name="fleet"))
