-- The runtime guard's snapshot before a migration runs (shipshape/engine/guard.py): every
-- user relation that holds rows or shows them (tables, partitioned and foreign tables,
-- views, materialized views) with its storage file, whether it holds rows, this
-- backend's count of rows deleted from it, and its columns.
-- Read from the catalog and the statistics only: no lock is taken on any table, so the
-- snapshot never waits for the application. has_rows is an estimate from the last
-- VACUUM/ANALYZE and the statistics (a table written and committed before holds rows in
-- them); it only decides whether a table found empty afterwards lost its rows.
-- deleted includes earlier transactions whose statistics the backend has not flushed
-- yet: the guard compares it with the count after.
-- columns: one line per column, "number<TAB>type oid<TAB>type modifier<TAB>name",
-- compared as a whole, and read apart only for a relation the migration touched.
SELECT c.oid::bigint AS oid,
       format('%I.%I', n.nspname, c.relname) AS name,
       c.relkind::text AS kind,
       c.relfilenode::bigint AS filenode,
       (c.relpages > 0 OR c.reltuples > 0 OR pg_stat_get_live_tuples(c.oid) > 0) AS has_rows,
       pg_stat_get_xact_tuples_deleted(c.oid) AS deleted,
       coalesce((SELECT string_agg(concat_ws(E'\t', a.attnum, a.atttypid, a.atttypmod, a.attname),
                                   E'\n' ORDER BY a.attnum)
                 FROM pg_attribute a
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '') AS columns
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'shipshape')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND n.nspname NOT LIKE 'pg\_temp\_%'
