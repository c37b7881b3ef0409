-- Tables (ordinary, partitioned, foreign) in scope, one row each.
-- Parameter: schemas (text[]), through the in-scope condition (in_scope.sql). Names are
-- schema-qualified only outside public. Objects that belong to an extension are left
-- out: the extension itself is compared instead.
SELECT CASE WHEN n.nspname = 'public' THEN c.relname ELSE n.nspname || '.' || c.relname END AS name,
       CASE c.relkind WHEN 'p' THEN 'partitioned table' WHEN 'f' THEN 'foreign table'
                      ELSE 'table' END AS kind,
       c.relpersistence = 'u' AS unlogged,
       CASE WHEN c.relforcerowsecurity THEN 'forced'
            WHEN c.relrowsecurity THEN 'enabled'
            ELSE 'disabled' END AS row_security,
       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END AS partition_key,
       CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END AS partition_bound,
       ARRAY(SELECT CASE WHEN pn.nspname = 'public' THEN p.relname
                         ELSE pn.nspname || '.' || p.relname END
             FROM pg_inherits i
             JOIN pg_class p ON p.oid = i.inhparent
             JOIN pg_namespace pn ON pn.oid = p.relnamespace
             WHERE i.inhrelid = c.oid
             ORDER BY i.inhseqno) AS inherits,
       c.reloptions AS options
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'f')
  AND {in_scope}
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
