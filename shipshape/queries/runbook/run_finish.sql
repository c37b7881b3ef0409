UPDATE shipshape.runbook_runs
SET status = %(status)s, finished_at = now(), detail = detail || %(detail)s
WHERE id = %(id)s
