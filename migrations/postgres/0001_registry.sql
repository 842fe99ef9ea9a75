-- Registry core for PostgreSQL: models, versions, environments, live versions and their history.
-- Times are UTC milliseconds since the Unix epoch; JSON lives in TEXT.

CREATE TABLE models (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT    NOT NULL CONSTRAINT models_name_key UNIQUE,
    description   TEXT    NOT NULL DEFAULT '',
    owner_team    TEXT    NOT NULL DEFAULT '',
    tags          TEXT    NOT NULL DEFAULT '[]',
    next_version  BIGINT  NOT NULL DEFAULT 1,
    created_at    BIGINT  NOT NULL,
    created_by    TEXT    NOT NULL,
    updated_at    BIGINT  NOT NULL
);

CREATE TABLE versions (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_id           BIGINT  NOT NULL REFERENCES models (id),
    number             BIGINT  NOT NULL,
    artifact_uri       TEXT    NOT NULL,
    artifact_digest    TEXT,
    framework          TEXT    NOT NULL DEFAULT '',
    parameters         TEXT    NOT NULL DEFAULT '{}',
    run_id             TEXT,
    run_link           TEXT,
    git_commit         TEXT,
    dataset_ref        TEXT,
    dataset_hash       TEXT,
    parent_version     BIGINT,
    description        TEXT    NOT NULL DEFAULT '',
    tags               TEXT    NOT NULL DEFAULT '[]',
    created_at         BIGINT  NOT NULL,
    created_by         TEXT    NOT NULL,
    quarantine_reason  TEXT,
    quarantined_at     BIGINT,
    quarantined_by     TEXT,
    CONSTRAINT versions_model_number_key UNIQUE (model_id, number)
);

CREATE TABLE environments (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT    NOT NULL CONSTRAINT environments_name_key UNIQUE,
    description  TEXT    NOT NULL DEFAULT '',
    position     BIGINT  NOT NULL DEFAULT 100,
    created_at   BIGINT  NOT NULL
);

INSERT INTO environments (name, description, position, created_at) VALUES
    ('staging', 'Pre-production: validates a version on shadow traffic', 10, 0),
    ('production', 'Serves live traffic', 20, 0);

CREATE TABLE deployments (
    model_id        BIGINT NOT NULL REFERENCES models (id),
    environment_id  BIGINT NOT NULL REFERENCES environments (id),
    version_number  BIGINT NOT NULL,
    revision        BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    updated_by      TEXT   NOT NULL,
    PRIMARY KEY (model_id, environment_id)
);

CREATE TABLE deployment_history (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_id        BIGINT NOT NULL REFERENCES models (id),
    environment_id  BIGINT NOT NULL REFERENCES environments (id),
    revision        BIGINT NOT NULL,
    from_version    BIGINT,
    to_version      BIGINT NOT NULL,
    kind            TEXT   NOT NULL,
    reason          TEXT   NOT NULL DEFAULT '',
    actor           TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    CONSTRAINT deployment_history_revision_key UNIQUE (model_id, environment_id, revision)
);

CREATE INDEX models_updated_at_idx ON models (updated_at);
CREATE INDEX deployment_history_model_idx ON deployment_history (model_id, id);
