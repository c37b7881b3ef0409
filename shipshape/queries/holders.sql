-- Sessions holding locks that other sessions wait for, or holding our advisory lock.
-- Parameters: the advisory lock key split into its two 32-bit halves (classid, objid).
SELECT a.pid,
       coalesce(nullif(a.application_name, ''), a.usename, '?') AS application_name,
       coalesce(a.xact_start, a.backend_start) AS since,
       a.state,
       left(regexp_replace(coalesce(a.query, ''), '\s+', ' ', 'g'), 120) AS query
FROM pg_locks l
JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted
  AND l.classid = %(classid)s AND l.objid = %(objid)s AND l.objsubid = 2  -- 2: the two-integer form of the advisory lock functions
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY since
