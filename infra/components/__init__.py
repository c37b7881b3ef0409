"""The components of the one graph (network -> database -> migration gate -> app), with a
platform implementation each: docker/ (one Docker engine) and kubernetes/ (a cluster,
PostgreSQL as a CloudNativePG Cluster or an external managed server). Each component is an
args dataclass and a ComponentResource whose children use parent=self; images.py is shared.
"""

from importlib import import_module


def platform(name: str):
    """The platform module: network(), database(), gate(), fleet(), app() and outputs()."""
    return import_module(f"infra.components.{name}")
