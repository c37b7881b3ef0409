-- The app replicas that have said they are alive within the heartbeat TTL, oldest
-- release first (shipshape/engine/releases.py). Each replica of the Avatar Creator
-- upserts its row every few seconds and deletes it when it stops (app/instances.py);
-- the table is created by migration 0012_app_instances.
SELECT instance, release, host, started_at, last_seen,
       extract(epoch FROM now() - last_seen)::integer AS seconds_ago
FROM shipshape.app_instances
WHERE last_seen > now() - make_interval(secs => %(ttl_seconds)s)
ORDER BY release, instance
