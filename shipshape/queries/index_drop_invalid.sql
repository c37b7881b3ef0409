-- Drop a half-built (INVALID) index before the migration that creates it builds it
-- again (engine/indexes.py). CONCURRENTLY: the table's reads and writes go on.
DROP INDEX CONCURRENTLY IF EXISTS {index}
