-- The last deploy recorded in this database, and the run it belonged to (fleet.status).
SELECT id, result, exit_code, finished_at, detail->>'run' AS run
  FROM shipshape.deployments
 ORDER BY id DESC
 LIMIT 1
