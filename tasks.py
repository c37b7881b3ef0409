"""shipshape's tasks: `invoke --list`, `invoke deploy --env dev`, `invoke --help db.verify`."""

from shipshape.tasks import namespace  # noqa: F401  (invoke looks for `namespace`)
