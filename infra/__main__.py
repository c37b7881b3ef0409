"""The stack: network -> database (ready) -> migration gate -> app. Only wiring here.
On kubernetes, a stack with shipshape:fleet_file also deploys that fleet: expand after the
gate, contract after the app.

The platform (shipshape:platform, docker or kubernetes) supplies each component; the graph
and the order are the same on both.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `infra` and `shipshape`

import pulumi

from infra import config
from infra.components import platform

cfg = config.load()
build = platform(cfg.platform)

network = build.network(cfg)
database = build.database(cfg, network)
gate = build.gate(cfg, network, database)
app = build.app(cfg, network, database, gate)
build.fleet(cfg, network, gate, app)  # its contract phase runs after the app's rollout

for name, value in build.outputs(cfg, network, database, gate, app).items():
    pulumi.export(name, value)
