"""Invoke collections: thin wrappers over the commands. tasks.py only assembles these."""
