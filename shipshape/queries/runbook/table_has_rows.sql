-- Whether a table has a row: restore adds a NOT NULL column without a default back only
-- to an empty table (it never invents a value for a row).
SELECT EXISTS (SELECT 1 FROM {table})
