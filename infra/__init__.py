"""The Pulumi program (Pulumi.yaml: main: infra/). `__main__.py` only wires the one graph;
`config.py` is the only reader of pulumi.Config; `components/` holds network, database,
gate and app for each platform (docker/, kubernetes/), each an args class plus a
ComponentResource whose children use parent=self."""
