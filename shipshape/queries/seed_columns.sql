-- Does the seed's table exist, and which columns (with their types) does it have?
-- One row with found = false when the table is missing; never an error.
SELECT c.oid IS NOT NULL AS found,
       a.attname AS name,
       format_type(a.atttypid, a.atttypmod) AS type,
       a.atttypid = 'json'::regtype AS is_json
FROM (SELECT to_regclass(%(table)s) AS oid) AS c
LEFT JOIN pg_catalog.pg_attribute AS a
       ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
