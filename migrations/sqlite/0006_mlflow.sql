-- The MLflow-compatible API for SQLite: experiments, runs with their params, tags and metric points,
-- and model aliases. A version registered from a run links it through versions.run_id.

-- Experiment 0 is MLflow's default experiment. Tags are a JSON object.
CREATE TABLE mlflow_experiments (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    name               TEXT    NOT NULL CONSTRAINT mlflow_experiments_name_key UNIQUE,
    artifact_location  TEXT    NOT NULL,
    tags               TEXT    NOT NULL DEFAULT '{}',
    created_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL
);
INSERT INTO mlflow_experiments (id, name, artifact_location, created_at, updated_at)
    VALUES (0, 'Default', 'mlflow-artifacts:/0', 0, 0);

-- A training run; id is 32 lower-case hex digits, as MLflow's.
CREATE TABLE mlflow_runs (
    id             TEXT    PRIMARY KEY,
    experiment_id  BIGINT  NOT NULL REFERENCES mlflow_experiments (id),
    name           TEXT    NOT NULL,
    user_id        TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    start_time     BIGINT  NOT NULL,
    end_time       BIGINT,
    created_by     TEXT    NOT NULL
);
CREATE INDEX mlflow_runs_experiment_idx ON mlflow_runs (experiment_id, start_time);

-- Parameters are written once; tags are overwritten.
CREATE TABLE mlflow_run_params (
    run_id  TEXT NOT NULL REFERENCES mlflow_runs (id),
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE mlflow_run_tags (
    run_id  TEXT NOT NULL REFERENCES mlflow_runs (id),
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);

-- Metric points of runs per key in the order they were logged, packed as the version series'
-- points are (24 bytes each: step i64, time ms i64, value f64, little-endian) in chunks of up to
-- 512, every chunk but the last full; the latest point per key (highest step, then time, then
-- value, as MLflow) is kept beside them for reading a run.
CREATE TABLE mlflow_metric_chunks (
    run_id       TEXT    NOT NULL REFERENCES mlflow_runs (id),
    key          TEXT    NOT NULL,
    chunk_no     BIGINT  NOT NULL,
    point_count  BIGINT  NOT NULL,
    points       BLOB    NOT NULL,
    PRIMARY KEY (run_id, key, chunk_no)
);
CREATE TABLE mlflow_latest_metrics (
    run_id  TEXT    NOT NULL REFERENCES mlflow_runs (id),
    key     TEXT    NOT NULL,
    value   REAL    NOT NULL,
    at      BIGINT  NOT NULL,
    step    BIGINT  NOT NULL,
    PRIMARY KEY (run_id, key)
);

-- Plain aliases (labels) of model versions. Aliases named after an environment are not stored:
-- they read the environment's live version.
CREATE TABLE model_aliases (
    model_id        BIGINT  NOT NULL REFERENCES models (id),
    alias           TEXT    NOT NULL,
    version_number  BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    updated_by      TEXT    NOT NULL,
    PRIMARY KEY (model_id, alias)
);
CREATE INDEX versions_run_idx ON versions (run_id);
