-- Which environment this database is. One row; written by the first deploy, changed only
-- by `invoke db.stamp`. Run under the migration lock.
CREATE SCHEMA IF NOT EXISTS shipshape;

CREATE TABLE IF NOT EXISTS shipshape.environment (
    one        boolean     PRIMARY KEY DEFAULT true CHECK (one),
    name       text        NOT NULL,
    stamped_at timestamptz NOT NULL DEFAULT now(),
    stamped_by text        NOT NULL,
    reason     text        NOT NULL DEFAULT ''
);
