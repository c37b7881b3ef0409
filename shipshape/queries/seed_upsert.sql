-- One declared seed row -> an idempotent upsert (shipshape.seeds).
-- Placeholders are composed with psycopg.sql: identifiers are quoted, values are
-- query parameters (apply) or quoted literals (script). An unchanged row is not
-- rewritten: the WHERE skips it, so RETURNING reports only inserted and updated rows.
INSERT INTO {table} AS t ({columns})
VALUES ({values})
ON CONFLICT ({key}) DO UPDATE
SET {assignments}
WHERE ROW({current}) IS DISTINCT FROM ROW({incoming})
{returning}
