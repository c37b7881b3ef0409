INSERT INTO shipshape.deployments
    (env, operator, started_at, from_version, to_version, result, exit_code, duration_ms, detail)
VALUES (%(env)s, %(operator)s, %(started_at)s, %(from_version)s, %(to_version)s, %(result)s,
        %(exit_code)s, %(duration_ms)s, %(detail)s)
RETURNING id
