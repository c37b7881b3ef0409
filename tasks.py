"""shipshape's tasks: `invoke --list`, `invoke deploy --env dev`, `invoke --help db.verify`."""

from shipshape.tasks.collection import namespace
