-- The column's NOT NULL as the migrations define it. {action}: SET or DROP.
ALTER TABLE {table} ALTER COLUMN {column} {action} NOT NULL
