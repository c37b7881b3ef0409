-- The live size and activity of the relations a pending migration locks
-- (shipshape/engine/locksafety.py). %(names)s: the names as the SQL writes them, which
-- to_regclass resolves as the server would (search_path, quoting); one that does not
-- exist yet is left out. rows: the planner's estimate (pg_class.reltuples, -1 when the
-- table was never analyzed or vacuumed); bytes: with its indexes and TOAST.
-- sessions: other sessions holding a lock on it now; oldest_seconds: the age of the
-- oldest of their transactions (what a strong lock would queue behind).
SELECT n.name,
       c.reltuples::bigint AS rows,
       pg_total_relation_size(c.oid) AS bytes,
       (SELECT count(DISTINCT l.pid) FROM pg_catalog.pg_locks l
        WHERE l.relation = c.oid AND l.pid <> pg_backend_pid() AND l.granted) AS sessions,
       (SELECT coalesce(max(extract(epoch FROM now() - a.xact_start)), 0)::integer
        FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
        WHERE l.relation = c.oid AND l.pid <> pg_backend_pid()) AS oldest_seconds
FROM unnest(%(names)s::text[]) AS n(name)
JOIN pg_catalog.pg_class c ON c.oid = to_regclass(n.name)
