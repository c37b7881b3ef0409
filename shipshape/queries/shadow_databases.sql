-- The shadow's scratch databases on this server (engine.shadow names them
-- shipshape_shadow_<owner marker>_<random>), with the sessions connected to each.
SELECT d.datname AS name,
       (SELECT count(*) FROM pg_catalog.pg_stat_activity AS a WHERE a.datid = d.oid) AS sessions
FROM pg_catalog.pg_database AS d
WHERE d.datname LIKE 'shipshape\_shadow\_%'
ORDER BY d.datname
