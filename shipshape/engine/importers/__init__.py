"""db.import: convert another tool's migration tree into shipshape's layout (one module
per tool; common.py writes the tree and the review)."""
