"""Mutation testing of shipshape's safety-critical code: `make mutate` (= `python -m mutate`).

A curated list of mutants (mutate/mutants.py), each a realistic bug: a file, the exact
snippet it changes, its replacement, and the tests that must catch it. Each mutant is
applied to a temporary copy of the tree (never to the working tree), and its tests run
there with `pytest -x`; a mutant is killed when they fail. Never part of the test suite
or of CI's required path: pytest does not collect this folder.
"""
