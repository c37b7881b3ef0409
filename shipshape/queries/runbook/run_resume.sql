-- A rerun takes over an unfinished run: it counts as another attempt of the same run.
UPDATE shipshape.runbook_runs
SET status = 'running', attempts = attempts + 1, finished_at = NULL,
    reason = coalesce(%(reason)s, reason),
    detail = detail || %(detail)s
WHERE id = %(id)s
RETURNING id, started_at
