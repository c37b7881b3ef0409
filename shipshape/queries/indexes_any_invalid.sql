-- Whether the database has any INVALID index at all: one cheap read per migrate run, so
-- that the per-migration check (indexes_invalid) runs only when there is one.
SELECT EXISTS (SELECT 1 FROM pg_index WHERE NOT indisvalid)
