-- The runbooks' own bookkeeping, next to shipshape.history: one row per run of a
-- runbook, one per step of it. A step recorded as done is never applied again: a rerun
-- of a failed run resumes after it. Run under the migration lock.
CREATE SCHEMA IF NOT EXISTS shipshape;

CREATE TABLE IF NOT EXISTS shipshape.runbook_runs (
    id           bigserial   PRIMARY KEY,
    runbook      text        NOT NULL,
    env          text        NOT NULL,
    operator     text        NOT NULL,
    reason       text,
    status       text        NOT NULL,  -- running | failed | fixed | unresolved | resolved
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    attempts     integer     NOT NULL DEFAULT 1,
    detail       jsonb       NOT NULL DEFAULT '{}'::jsonb
);

CREATE TABLE IF NOT EXISTS shipshape.runbook_steps (
    run_id       bigint      NOT NULL REFERENCES shipshape.runbook_runs (id) ON DELETE CASCADE,
    step         text        NOT NULL,
    position     integer     NOT NULL,
    operation    text        NOT NULL,
    status       text        NOT NULL,  -- done | skipped | failed
    sql_sha256   text,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL DEFAULT now(),
    duration_ms  integer     NOT NULL DEFAULT 0,
    operator     text        NOT NULL,
    detail       text        NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, step)
);
