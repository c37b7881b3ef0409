DELETE FROM shipshape.history WHERE version = %(version)s
