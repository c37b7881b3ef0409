-- The runtime guard's snapshot after a migration ran, inside its transaction, before its
-- commit (shipshape/engine/guard.py): only the relations this transaction locked, because
-- PostgreSQL locks every relation a statement drops, alters, deletes from or truncates,
-- whoever issues it (a trigger, a function defined outside the tree, dynamic SQL). A
-- dropped relation keeps its lock and has no pg_class row any more: present is false.
-- empty is read for tables only, and only for these (pg_relation_size locks; they are
-- locked already).
SELECT l.oid::bigint AS oid,
       c.oid IS NOT NULL AS present,
       c.relfilenode::bigint AS filenode,
       CASE WHEN c.relkind IN ('r', 'm') THEN pg_relation_size(c.oid) = 0 END AS empty,
       pg_stat_get_xact_tuples_deleted(l.oid) AS deleted,
       coalesce(json_agg(json_build_array(a.attnum, a.attname, format_type(a.atttypid, a.atttypmod))
                         ORDER BY a.attnum) FILTER (WHERE a.attnum IS NOT NULL), '[]') AS columns
FROM (SELECT DISTINCT relation AS oid
      FROM pg_locks
      WHERE pid = pg_backend_pid() AND locktype = 'relation'
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())) l
LEFT JOIN pg_class c ON c.oid = l.oid
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.oid IS NULL OR c.relkind IN ('r', 'p', 'f', 'v', 'm')
GROUP BY l.oid, c.oid
