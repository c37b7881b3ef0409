-- Compare declared seed rows with the table, read-only, one query for many rows.
-- d holds the declared values cast to the columns' types; for each declared non-key
-- column the select list has (equal?, actual value).
SELECT {select}
FROM (VALUES {values}) AS d ({aliases})
LEFT JOIN {table} AS x ON {match}
ORDER BY d.n
