-- Privileges granted on tables, views, materialized views, sequences and foreign tables
-- in scope, one row per (relation, grantee, privilege). The owner's own privileges are
-- left out (the shadow database may be built by another role), and so are relations
-- with default privileges (relacl NULL). Grants to PUBLIC appear as grantee 'PUBLIC'.
SELECT CASE WHEN n.nspname = 'public' THEN c.relname ELSE n.nspname || '.' || c.relname END
           AS name,
       CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END AS grantee,
       x.privilege_type || CASE WHEN x.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END
           AS privilege
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL aclexplode(c.relacl) x
WHERE c.relacl IS NOT NULL
  AND c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S')
  AND x.grantee <> c.relowner
  AND {in_scope}
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
