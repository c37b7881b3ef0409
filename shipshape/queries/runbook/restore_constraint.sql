-- A constraint as the migrations define it (definition from the shadow database, built
-- from the same migrations): dropped if present in another shape, added back, in one
-- statement. {table}, {name}: identifiers; {definition}: pg_get_constraintdef() text.
ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}, ADD CONSTRAINT {name} {definition}
