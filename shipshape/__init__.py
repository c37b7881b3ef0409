"""shipshape: migrate -> seed -> verify, as gated operations on PostgreSQL.

The library is the product; the Invoke tasks in ``shipshape.tasks`` are a thin layer.
"""

__version__ = "0.1.0"
