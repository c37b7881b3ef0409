-- How many rows of {table} have their foreign key columns all set: when the referenced
-- table is re-created empty by an earlier step, each of them would be rejected.
SELECT count(*) FROM {table} c WHERE {not_null}
