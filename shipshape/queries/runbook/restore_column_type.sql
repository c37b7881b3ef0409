-- A column's type set back to what the migrations define, only when no value can be lost:
-- a binary-coercible widening (varchar(10) -> text), no rewrite of the table.
ALTER TABLE {table} ALTER COLUMN {column} TYPE {type}
