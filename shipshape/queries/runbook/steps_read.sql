SELECT step, position, operation, status, sql_sha256, started_at, finished_at, duration_ms,
       operator, detail
FROM shipshape.runbook_steps
WHERE run_id = %(run_id)s
ORDER BY position
