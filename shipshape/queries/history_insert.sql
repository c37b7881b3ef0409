-- A migration's row in shipshape.history: the one statement that writes one
-- (shipshape/engine/history.py). Each {field} is filled by the engine with a parameter
-- and by the psql script with a literal or with what psql measures itself. A row of the
-- same version (a failed attempt, a changed name) is replaced whole.
INSERT INTO shipshape.history
    (version, name, checksum, source_checksum, applied_at, duration_ms, applied_by, success,
     phase, lock_ok)
VALUES ({version}, {name}, {checksum}, {source_checksum}, now(), {duration_ms},
        {applied_by}, {success}, {phase}, {lock_ok})
ON CONFLICT (version) DO UPDATE
SET name = EXCLUDED.name, checksum = EXCLUDED.checksum,
    source_checksum = EXCLUDED.source_checksum, applied_at = EXCLUDED.applied_at,
    duration_ms = EXCLUDED.duration_ms, applied_by = EXCLUDED.applied_by,
    success = EXCLUDED.success, phase = EXCLUDED.phase,
    lock_ok = EXCLUDED.lock_ok
