-- Which schemas a snapshot covers: the one place that decides it. Not a query: a
-- condition on pg_namespace n, put in place of {in_scope} in every other catalog/*.sql
-- (catalog.py does it when it loads them). Parameter: schemas (text[]), the schemas
-- asked for, or NULL for every schema except PostgreSQL's own (pg_*,
-- information_schema) and shipshape's bookkeeping.
CASE WHEN %(schemas)s::text[] IS NULL
     THEN n.nspname !~ '^pg_' AND n.nspname NOT IN ('information_schema', 'shipshape')
     ELSE n.nspname = ANY (%(schemas)s::text[]) END
