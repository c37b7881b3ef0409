-- End one session named in the plan. backend_start guards against a reused pid: a
-- different session that got the same pid since the plan was shown is never touched.
SELECT pg_terminate_backend(pid) AS terminated
FROM pg_stat_activity
WHERE pid = %(pid)s AND backend_start = %(backend_start)s
