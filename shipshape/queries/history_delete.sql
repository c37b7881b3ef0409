-- A rolled-back migration's row leaves shipshape.history (shipshape/engine/history.py).
DELETE FROM shipshape.history WHERE version = {version}
