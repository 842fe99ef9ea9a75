-- Long operations run in the background (verifying the audit chain, exporting it): their progress
-- and outcome, kept here so a reloaded page and every replica see them. At most one of a kind runs
-- at a time in each scope ('' for the whole server, a username for that user's exports).
CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT   NOT NULL,
    scope         TEXT   NOT NULL,
    state         TEXT   NOT NULL,
    done          BIGINT NOT NULL DEFAULT 0,
    total         BIGINT NOT NULL DEFAULT 0,
    requested_by  TEXT   NOT NULL,
    started_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    finished_at   BIGINT,
    error         TEXT,
    result        TEXT
);
CREATE UNIQUE INDEX jobs_one_running_idx ON jobs (kind, scope) WHERE state = 'running';
CREATE INDEX jobs_kind_idx ON jobs (kind, scope, id);
