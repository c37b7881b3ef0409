SELECT version, name, checksum, source_checksum, applied_at, duration_ms, applied_by, success,
       phase, lock_ok
FROM shipshape.history
ORDER BY version
