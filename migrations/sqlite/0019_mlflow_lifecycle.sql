-- MLflow's lifecycle: a deleted experiment or run is kept, restorable and hidden from searches
-- until restored (deleted_at is when it was deleted, NULL while active).
ALTER TABLE mlflow_experiments ADD COLUMN deleted_at BIGINT;
ALTER TABLE mlflow_runs ADD COLUMN deleted_at BIGINT;

-- Runs searched by a metric (`metrics.accuracy > 0.9`, ordered by it) start from that key's values.
CREATE INDEX mlflow_latest_metrics_key_value_idx ON mlflow_latest_metrics (key, value);
