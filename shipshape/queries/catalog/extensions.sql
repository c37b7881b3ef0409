-- Extensions installed into a schema in scope, and that schema. Not their version: a
-- shadow database and its target may legitimately run different minor versions.
SELECT e.extname AS name,
       n.nspname AS schema
FROM pg_extension e
JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE {in_scope}
