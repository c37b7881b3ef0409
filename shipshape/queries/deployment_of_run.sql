-- This database's successful deploy of a run (a fleet run), if any: a run deploys each
-- database once. Read under the deploy lock.
SELECT id, from_version, to_version
  FROM shipshape.deployments
 WHERE detail->>'run' = %(run)s AND result = 'ok'
 ORDER BY id
 LIMIT 1
