-- The runtime guard's snapshot after a migration ran, inside its transaction, before its
-- commit (shipshape/engine/guard.py): only the relations this transaction locked, because
-- PostgreSQL locks every relation a statement creates, drops, alters, deletes from or
-- truncates, whoever issues it (a trigger, a function defined outside the tree, dynamic
-- SQL). A dropped relation keeps its lock and has no pg_class row any more: present is
-- false. The same columns as guard/before, so that these rows update the guard's
-- snapshot for the next migration of the run; has_rows and empty are read from the
-- tables' files (pg_relation_size locks: these are locked already).
SELECT l.oid::bigint AS oid,
       c.oid IS NOT NULL AS present,
       CASE WHEN c.oid IS NOT NULL THEN format('%I.%I', n.nspname, c.relname) END AS name,
       c.relkind::text AS kind,
       c.relfilenode::bigint AS filenode,
       CASE WHEN c.relkind IN ('r', 'm') THEN pg_relation_size(c.oid) > 0
            ELSE pg_stat_get_live_tuples(c.oid) > 0 END AS has_rows,
       pg_stat_get_xact_tuples_deleted(l.oid) AS deleted,
       coalesce((SELECT string_agg(concat_ws(E'\t', a.attnum, a.atttypid, a.atttypmod, a.attname),
                                   E'\n' ORDER BY a.attnum)
                 FROM pg_attribute a
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '') AS columns
FROM (SELECT DISTINCT relation AS oid
      FROM pg_locks
      WHERE pid = pg_backend_pid() AND locktype = 'relation'
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())) l
LEFT JOIN pg_class c ON c.oid = l.oid
LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid IS NULL
   OR (c.relkind IN ('r', 'p', 'f', 'v', 'm')
       AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'shipshape')
       AND n.nspname NOT LIKE 'pg\_toast%'
       AND n.nspname NOT LIKE 'pg\_temp\_%')
