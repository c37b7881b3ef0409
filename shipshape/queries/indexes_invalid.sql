-- Which of these indexes (names as to_regclass reads them) exist and are INVALID: left
-- by a CREATE INDEX CONCURRENTLY that failed or was killed (engine/indexes.py). Reads
-- the catalog only; to_regclass takes no lock.
SELECT n.nspname, c.relname
FROM unnest(%(names)s::text[]) AS wanted(name)
JOIN pg_index i ON i.indexrelid = to_regclass(wanted.name)
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT i.indisvalid
ORDER BY 1, 2
