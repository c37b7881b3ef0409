-- Whether the session named in the plan (pid and start time) still exists.
SELECT EXISTS (SELECT 1 FROM pg_stat_activity
               WHERE pid = %(pid)s AND backend_start = %(backend_start)s) AS alive
