-- The env this database was stamped with; for a database deployed before stamps existed,
-- the env of its last successful deploy (shipshape.deployments); else none.
SELECT name, 'stamp' AS source
  FROM shipshape.environment
 WHERE to_regclass('shipshape.environment') IS NOT NULL
