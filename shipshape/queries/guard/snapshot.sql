-- The runtime guard's snapshot (shipshape/engine/guard.py), read before the first watched
-- migration of a run and again after one it did not watch: every user relation that
-- holds rows or shows them (tables, partitioned and foreign tables, views, materialized
-- views), kept on the server in a temporary table of this session, so that the check at
-- the end of each migration's own message can compare without a round trip. The table
-- is private to the session, written without WAL, and gone when the session ends; it is
-- transactional like everything else: a migration rolled back takes its update of the
-- snapshot with it.
--
-- Read from the catalog and the statistics only: no lock is taken on any table, so the
-- snapshot never waits for the application. has_rows is an estimate from the last
-- VACUUM/ANALYZE and the statistics (a table written and committed before holds rows in
-- them); it only decides whether a table found empty afterwards lost its rows.
-- deleted includes earlier transactions whose statistics the backend has not flushed
-- yet: the check compares it with the count after.
-- types: one "number:type oid:type modifier" per column, for the check (a column dropped
-- or retyped is an entry missing afterwards; an added one is new, a rename changes
-- nothing); names: the columns' names in the same order, for the check's message.
DO $$
BEGIN
    IF to_regclass('pg_temp.shipshape_guard') IS NULL THEN
        CREATE TEMPORARY TABLE shipshape_guard (
            oid oid PRIMARY KEY,
            name text NOT NULL,
            kind "char" NOT NULL,
            filenode oid NOT NULL,
            has_rows boolean NOT NULL,
            deleted bigint NOT NULL,
            types text[] NOT NULL,
            names text[] NOT NULL
        );
    END IF;
END $$;
DELETE FROM pg_temp.shipshape_guard;
INSERT INTO pg_temp.shipshape_guard
SELECT c.oid,
       format('%I.%I', n.nspname, c.relname),
       c.relkind,
       c.relfilenode,
       c.relpages > 0 OR c.reltuples > 0 OR pg_stat_get_live_tuples(c.oid) > 0,
       pg_stat_get_xact_tuples_deleted(c.oid),
       coalesce(col.types, '{}'),
       coalesce(col.names, '{}')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN LATERAL (
    SELECT array_agg(concat_ws(':', a.attnum, a.atttypid, a.atttypmod) ORDER BY a.attnum) AS types,
           array_agg(a.attname::text ORDER BY a.attnum) AS names
    FROM pg_attribute a
    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) col ON true
WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'shipshape')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND n.nspname NOT LIKE 'pg\_temp\_%';
