INSERT INTO shipshape.history
    (version, name, checksum, source_checksum, applied_at, duration_ms, applied_by, success)
VALUES (%(version)s, %(name)s, %(checksum)s, %(source_checksum)s, now(), %(duration_ms)s,
        %(applied_by)s, %(success)s)
ON CONFLICT (version) DO UPDATE
SET name = EXCLUDED.name, checksum = EXCLUDED.checksum,
    source_checksum = EXCLUDED.source_checksum, applied_at = EXCLUDED.applied_at,
    duration_ms = EXCLUDED.duration_ms, applied_by = EXCLUDED.applied_by,
    success = EXCLUDED.success
