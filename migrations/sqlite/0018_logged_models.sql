-- A recorded file's bytes live under the key of the upload that brought them, so replacing a file
-- is one switch of its row; the replaced bytes are removed once the switch has committed.
ALTER TABLE artifacts ADD COLUMN object_key TEXT NOT NULL DEFAULT '';
UPDATE artifacts SET object_key = path;

-- MLflow 3's logged models: a model's files under <experiment>/models/<id>/artifacts/, writable
-- while PENDING; finalizing it READY fixes its file list and records that list's digest.
CREATE TABLE logged_models (
    id              TEXT    PRIMARY KEY,
    experiment_id   BIGINT  NOT NULL REFERENCES mlflow_experiments (id),
    name            TEXT    NOT NULL,
    model_type      TEXT    NOT NULL,
    source_run_id   TEXT    REFERENCES mlflow_runs (id),
    status          TEXT    NOT NULL,
    status_message  TEXT    NOT NULL,
    tags            TEXT    NOT NULL,
    params          TEXT    NOT NULL,
    digest          TEXT,
    deleted_at      BIGINT,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    created_by      TEXT    NOT NULL
);
CREATE INDEX logged_models_experiment_idx ON logged_models (experiment_id, created_at);

-- Metric points logged for a logged model (`log_metric(..., model_id=...)`), besides the run's own.
CREATE TABLE logged_model_metrics (
    model_id  TEXT    NOT NULL REFERENCES logged_models (id),
    run_id    TEXT,
    key       TEXT    NOT NULL,
    value     REAL,
    at        BIGINT  NOT NULL,
    step      BIGINT  NOT NULL
);
CREATE INDEX logged_model_metrics_model_idx ON logged_model_metrics (model_id, key);

-- What a run used and made, in MLflow's own shapes (JSON): its dataset and model inputs, and the
-- logged models it output.
CREATE TABLE mlflow_run_links (
    run_id  TEXT  NOT NULL REFERENCES mlflow_runs (id),
    kind    TEXT  NOT NULL,
    body    TEXT  NOT NULL
);
CREATE INDEX mlflow_run_links_run_idx ON mlflow_run_links (run_id, kind);

-- Where the registry holds a version's files (a directory of the artifact store), when it does:
-- the version's digest was then computed by the server over that directory's file list.
ALTER TABLE versions ADD COLUMN artifact_root TEXT;
CREATE INDEX versions_artifact_root_idx ON versions (artifact_root);
