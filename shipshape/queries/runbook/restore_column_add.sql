-- A missing column added back to its table as the migrations define it (from the shadow
-- database). {definition}: its type, COLLATE, DEFAULT or GENERATED ALWAYS AS (...), and
-- NOT NULL. It goes at the end of the table: column order is not part of the schema.
ALTER TABLE {table} ADD COLUMN {column} {definition}
