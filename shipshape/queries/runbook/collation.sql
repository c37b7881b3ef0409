-- The collation a snapshot names (catalog/columns.sql: unqualified in pg_catalog and
-- public, else schema.name) that this database can use: its schema and name.
SELECT n.nspname, c.collname
FROM pg_collation c
JOIN pg_namespace n ON n.oid = c.collnamespace
WHERE CASE WHEN n.nspname IN ('pg_catalog', 'public') THEN c.collname
           ELSE n.nspname || '.' || c.collname END = %(name)s
  AND c.collencoding IN (-1, (SELECT encoding FROM pg_database
                              WHERE datname = current_database()))
ORDER BY n.nspname = 'pg_catalog' DESC
LIMIT 1
