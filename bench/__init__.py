"""shipshape's benchmarks: `make bench` (= `.venv/bin/python -m bench [NAME ...]`).

Never part of the test suite, and never asserting timing: each benchmark measures a
ratio against a baseline taken in the same run, or an absolute next to its target, and
the run prints a Markdown table and overwrites bench/RESULTS.md with it.

Kept import-light on purpose: `python -m bench.migrations engine-apply ...` (the child
process of the memory benchmark) imports this package first.
"""
