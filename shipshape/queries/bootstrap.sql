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
    success         boolean     NOT NULL
);

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
