-- Other client sessions of this database that have a transaction open: since when, the
-- locks they hold on this database's relations, and the sessions waiting for them.
-- The system schemas are left out of the locks: every query takes catalog locks.
SELECT a.pid,
       a.backend_start,
       a.xact_start,
       coalesce(nullif(a.application_name, ''), '?') AS application_name,
       coalesce(a.usename, '?') AS usename,
       a.state,
       extract(epoch FROM clock_timestamp() - a.xact_start)::float8 AS xact_seconds,
       left(regexp_replace(coalesce(a.query, ''), '\s+', ' ', 'g'), 160) AS query,
       (SELECT string_agg(DISTINCT c.relname || ' (' || l.mode || ')', ', ')
        FROM pg_locks l
        JOIN pg_class c ON c.oid = l.relation
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE l.pid = a.pid AND l.granted AND l.locktype = 'relation'
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg\_toast%%') AS locks,
       (SELECT coalesce(array_agg(w.pid ORDER BY w.pid), '{}')
        FROM pg_stat_activity w
        WHERE w.datname = a.datname AND a.pid = ANY (pg_blocking_pids(w.pid))) AS blocking
FROM pg_stat_activity a
WHERE a.datname = current_database()
  AND a.pid <> pg_backend_pid()
  AND a.backend_type = 'client backend'
  AND a.xact_start IS NOT NULL
ORDER BY a.xact_start, a.pid
