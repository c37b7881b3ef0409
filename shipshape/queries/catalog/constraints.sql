-- Table constraints in scope, one row each. NOT NULL constraints (PostgreSQL 18 stores
-- them here) are compared as column nullability; constraint triggers as triggers.
-- The per-partition copies that a foreign key to a partitioned table creates on the
-- same referencing table (same name, conparentid set) are left out.
SELECT CASE WHEN n.nspname = 'public' THEN c.relname ELSE n.nspname || '.' || c.relname END
           AS table_name,
       k.conname AS name,
       CASE k.contype WHEN 'p' THEN 'PRIMARY KEY' WHEN 'f' THEN 'FOREIGN KEY'
                      WHEN 'u' THEN 'UNIQUE' WHEN 'c' THEN 'CHECK' WHEN 'x' THEN 'EXCLUDE'
                      ELSE k.contype::text END AS type,
       pg_get_constraintdef(k.oid) AS definition
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE k.contype NOT IN ('n', 't')
  AND NOT EXISTS (SELECT 1 FROM pg_constraint pk
                  WHERE pk.oid = k.conparentid AND pk.conrelid = k.conrelid)
  AND {in_scope}
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
