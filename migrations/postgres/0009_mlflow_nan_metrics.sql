-- MLflow clients log NaN (a diverging loss, say): a run's latest value of a metric may be NaN,
-- stored as NULL as on SQLite (which keeps no NaN). Its history keeps every value in the packed
-- chunks as is.
ALTER TABLE mlflow_latest_metrics ALTER COLUMN value DROP NOT NULL;
