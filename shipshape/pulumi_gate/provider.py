"""The migration gate's Pulumi dynamic provider (used by infra/components/gate.py).

It lives in the installed package, not in infra/, on purpose: Pulumi pickles a provider
class defined outside the program's __main__ by reference (pulumi/pulumi#7453; the
by-value rewrite of #7755 was reverted in #7889), so the provider process must be able to
import its module — and shipshape is installed in the virtualenv Pulumi runs. The class
holds no state and delegates everything to shipshape.gate, which is tested against
PostgreSQL without Pulumi.
"""

from __future__ import annotations

import pulumi.dynamic


class MigrationGateProvider(pulumi.dynamic.ResourceProvider):
    """create/update run the gate; diff compares the watched inputs; delete is a no-op
    (the schema lives in the database's volume and goes with it)."""

    def diff(self, _id, olds, news):
        from shipshape.pulumi_gate import gate

        changed = gate.provider_diff(olds, news)
        return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=[],
                                         delete_before_replace=False)

    def create(self, props):
        from shipshape.pulumi_gate import gate

        outs = gate.provider_apply(props)
        return pulumi.dynamic.CreateResult(id_=f"migration-gate-{props['env']}", outs=outs)

    def update(self, _id, _olds, news):
        from shipshape.pulumi_gate import gate

        return pulumi.dynamic.UpdateResult(outs=gate.provider_apply(news))

    def delete(self, _id, _props):
        return None
