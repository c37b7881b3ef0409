-- A database deployed before stamps existed: the env of its last successful deploy.
SELECT env AS name, 'last deploy' AS source
  FROM shipshape.deployments
 WHERE result = 'ok'
 ORDER BY id DESC
 LIMIT 1
