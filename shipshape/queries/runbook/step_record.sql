-- A step's outcome. A done step stays done: a later failure of a rerun cannot overwrite
-- it (a fix records itself as done inside its own transaction, then again with its detail).
INSERT INTO shipshape.runbook_steps
    (run_id, step, position, operation, status, sql_sha256, started_at, duration_ms,
     operator, detail)
VALUES (%(run_id)s, %(step)s, %(position)s, %(operation)s, %(status)s, %(sql_sha256)s,
        %(started_at)s, %(duration_ms)s, %(operator)s, %(detail)s)
ON CONFLICT (run_id, step) DO UPDATE
SET status = EXCLUDED.status, sql_sha256 = EXCLUDED.sql_sha256,
    started_at = EXCLUDED.started_at, finished_at = now(),
    duration_ms = EXCLUDED.duration_ms, operator = EXCLUDED.operator, detail = EXCLUDED.detail
WHERE shipshape.runbook_steps.status <> 'done' OR EXCLUDED.status = 'done'
