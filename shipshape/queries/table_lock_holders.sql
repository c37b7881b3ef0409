-- Other sessions holding locks on relations of this database, longest first: the
-- likely reason a migration's lock_timeout expired.
SELECT a.pid,
       coalesce(nullif(a.application_name, ''), a.usename, '?') AS application_name,
       coalesce(a.xact_start, a.backend_start) AS since,
       a.state,
       string_agg(DISTINCT c.relname || ' (' || l.mode || ')', ', ') AS locks
FROM pg_locks l
JOIN pg_stat_activity a ON a.pid = l.pid
JOIN pg_class c ON c.oid = l.relation
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE l.granted
  AND l.pid <> pg_backend_pid()
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%%'
GROUP BY a.pid, a.application_name, a.usename, a.xact_start, a.backend_start, a.state
ORDER BY since
