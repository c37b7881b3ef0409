-- The column's default as the migrations define it ({default}: pg_get_expr() text).
ALTER TABLE {table} ALTER COLUMN {column} SET DEFAULT {default}
