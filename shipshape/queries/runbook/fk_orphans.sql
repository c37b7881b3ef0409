-- How many rows of {table} a foreign key would reject: their key columns {columns} are
-- all set and no row of {ref_table} has them as {ref_columns}. Restore leaves such a
-- foreign key (adding it would fail) and names the runbook that restores the parents.
SELECT count(*) FROM {table} c
WHERE {not_null}
  AND NOT EXISTS (SELECT 1 FROM {ref_table} r WHERE ({ref_columns}) = ({columns}))
