-- An index whose definition drifted is dropped before it is created again as the
-- migrations define it. {concurrently}: CONCURRENTLY where env.concurrent_indexes is set.
DROP INDEX {concurrently}IF EXISTS {name}
