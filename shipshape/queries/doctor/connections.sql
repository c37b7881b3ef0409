-- Connection health: how many connections the server holds against its limit, and
-- whether it accepts writes (a standby in recovery does not).
SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int AS used,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS reserved,
       pg_is_in_recovery() AS in_recovery,
       current_setting('server_version') AS server_version
