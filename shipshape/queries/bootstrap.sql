-- shipshape's own bookkeeping, in its own schema so that drift checks of the
-- application's schemas never see it. Run under the migration lock.
CREATE SCHEMA IF NOT EXISTS shipshape;

CREATE TABLE IF NOT EXISTS shipshape.history (
    version         integer PRIMARY KEY,
    name            text        NOT NULL,
    checksum        text        NOT NULL,  -- sha256 of the rendered SQL that ran
    source_checksum text        NOT NULL,  -- sha256 of the template it came from
    applied_at      timestamptz NOT NULL DEFAULT now(),
    duration_ms     integer     NOT NULL DEFAULT 0,
    applied_by      text        NOT NULL,
    success         boolean     NOT NULL,
    -- expand keeps the previous app release working, contract breaks it (issue #12);
    -- the app's readiness reads it: a contract migration after its release makes it unready
    phase           text        NOT NULL DEFAULT 'expand' CHECK (phase IN ('expand', 'contract')),
    -- the lock findings the migration accepted (`-- shipshape:lock-ok <rule> <reason>`),
    -- one "rule: reason" per line
    lock_ok         text        NOT NULL DEFAULT ''
);
-- A history written before phases and lock-ok existed: every row was an expand (no
-- contract directive existed) and accepted no lock finding. Asked of the catalog first, so that a history that has the column
-- is not locked at all (the app reads it for readiness while a deploy bootstraps).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                   WHERE attrelid = 'shipshape.history'::regclass AND attname = 'phase'
                     AND NOT attisdropped) THEN
        ALTER TABLE shipshape.history
            ADD COLUMN phase text NOT NULL DEFAULT 'expand'
                CHECK (phase IN ('expand', 'contract'));
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                   WHERE attrelid = 'shipshape.history'::regclass AND attname = 'lock_ok'
                     AND NOT attisdropped) THEN
        ALTER TABLE shipshape.history ADD COLUMN lock_ok text NOT NULL DEFAULT '';
    END IF;
END
$$;

CREATE TABLE IF NOT EXISTS shipshape.deployments (
    id            bigserial   PRIMARY KEY,
    env           text        NOT NULL,
    operator      text        NOT NULL,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz NOT NULL DEFAULT now(),
    from_version  integer,
    to_version    integer,
    result        text        NOT NULL,  -- ok | failed at <gate>
    exit_code     integer     NOT NULL,
    duration_ms   integer     NOT NULL,
    detail        jsonb       NOT NULL DEFAULT '{}'::jsonb
);
