SELECT version, name, checksum, source_checksum, applied_at, duration_ms, applied_by, success
FROM shipshape.history
ORDER BY version
