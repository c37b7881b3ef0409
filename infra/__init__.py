"""The Pulumi program (Pulumi.yaml: main: infra/). `__main__.py` only wires the components;
`config.py` is the only reader of pulumi.Config; `components/` holds network, database,
gate and app, each an args class plus a ComponentResource whose children use parent=self."""
