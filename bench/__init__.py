"""shipshape's benchmarks: `make bench` (= `.venv/bin/python -m bench [--quick] [NAME ...]`).

Measured as the user runs it: every contender (shipshape's CLI, psql, the peers) is a
child process, timed from fork to exit. Never part of the test suite, and never asserting
timing: each benchmark measures a ratio against a baseline taken in the same run, or an
absolute next to its target; the run prints a Markdown report and overwrites
bench/results.md with it.
"""
