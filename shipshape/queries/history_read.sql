-- phase and lock_ok through to_jsonb: a history written before those columns existed
-- reads as all expand, accepting no lock finding, before bootstrap (which a refused run
-- never reaches, so that it writes nothing) adds them.
SELECT version, name, checksum, source_checksum, applied_at, duration_ms, applied_by, success,
       coalesce(to_jsonb(h) ->> 'phase', 'expand') AS phase,
       coalesce(to_jsonb(h) ->> 'lock_ok', '') AS lock_ok
FROM shipshape.history AS h
ORDER BY version
