INSERT INTO shipshape.runbook_runs (runbook, env, operator, reason, status, detail)
VALUES (%(runbook)s, %(env)s, %(operator)s, %(reason)s, 'running', %(detail)s)
RETURNING id, started_at
