-- MLflow clients log NaN (a diverging loss, say): a run's latest value of a metric may be NaN,
-- stored as NULL (SQLite keeps no NaN). Its history keeps every value in the packed chunks as is.
CREATE TABLE mlflow_latest_metrics_nan (
    run_id  TEXT    NOT NULL REFERENCES mlflow_runs (id),
    key     TEXT    NOT NULL,
    value   REAL,
    at      BIGINT  NOT NULL,
    step    BIGINT  NOT NULL,
    PRIMARY KEY (run_id, key)
);
INSERT INTO mlflow_latest_metrics_nan (run_id, key, value, at, step)
    SELECT run_id, key, value, at, step FROM mlflow_latest_metrics;
DROP TABLE mlflow_latest_metrics;
ALTER TABLE mlflow_latest_metrics_nan RENAME TO mlflow_latest_metrics;
