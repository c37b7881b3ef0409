-- The latest unfinished run of a runbook in an env: the one a rerun resumes.
SELECT id, runbook, env, operator, reason, status, started_at, attempts, detail
FROM shipshape.runbook_runs
WHERE runbook = %(runbook)s AND env = %(env)s AND status IN ('running', 'failed')
ORDER BY id DESC
LIMIT 1
