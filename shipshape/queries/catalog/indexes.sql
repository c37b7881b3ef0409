-- Indexes on the tables and materialized views in scope, one row each. Indexes that
-- implement a PRIMARY KEY, UNIQUE or EXCLUDE constraint are compared as constraints.
SELECT CASE WHEN n.nspname = 'public' THEN ic.relname ELSE n.nspname || '.' || ic.relname END
           AS name,
       CASE WHEN n.nspname = 'public' THEN c.relname ELSE n.nspname || '.' || c.relname END
           AS table_name,
       pg_get_indexdef(i.indexrelid) AS definition,
       i.indisvalid AS valid
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE {in_scope}
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k
                  WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid
                    AND k.contype IN ('p', 'u', 'x'))
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
