-- Metric series of versions in chunks of packed points, guardrails, and each version's health per environment (SQLite).

-- One series per version, key, source and (for live points) environment; environment_id 0 = evaluation.
CREATE TABLE metric_series (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    version_id      BIGINT  NOT NULL REFERENCES versions (id),
    key             TEXT    NOT NULL,
    source          TEXT    NOT NULL,
    environment_id  BIGINT  NOT NULL DEFAULT 0,
    point_count     BIGINT  NOT NULL DEFAULT 0,
    chunk_count     BIGINT  NOT NULL DEFAULT 0,
    first_step      BIGINT  NOT NULL DEFAULT 0,
    first_at        BIGINT  NOT NULL DEFAULT 0,
    first_value     REAL    NOT NULL DEFAULT 0,
    last_step       BIGINT  NOT NULL DEFAULT 0,
    last_at         BIGINT  NOT NULL DEFAULT 0,
    last_value      REAL    NOT NULL DEFAULT 0,
    min_value       REAL    NOT NULL DEFAULT 0,
    max_value       REAL    NOT NULL DEFAULT 0,
    CONSTRAINT metric_series_key UNIQUE (version_id, key, source, environment_id)
);

-- Points in arrival order, in chunks of up to 512; every chunk but a series' last is full. A
-- chunk's row here holds its step and time ranges, its lowest and highest point and its sum, so a
-- series can be downsampled, and a guardrail's min, max or mean over a time window taken, from these
-- narrow rows alone; the points themselves, packed 24 bytes each (step i64, time ms i64, value f64,
-- little-endian), are in metric_chunk_points, read only where needed.
CREATE TABLE metric_chunks (
    series_id    BIGINT  NOT NULL REFERENCES metric_series (id),
    chunk_no     BIGINT  NOT NULL,
    point_count  BIGINT  NOT NULL,
    step_min     BIGINT  NOT NULL,
    step_max     BIGINT  NOT NULL,
    at_min       BIGINT  NOT NULL,
    at_max       BIGINT  NOT NULL,
    low_step     BIGINT  NOT NULL,
    low_at       BIGINT  NOT NULL,
    low_value    REAL    NOT NULL,
    high_step    BIGINT  NOT NULL,
    high_at      BIGINT  NOT NULL,
    high_value   REAL    NOT NULL,
    value_sum    REAL    NOT NULL,
    PRIMARY KEY (series_id, chunk_no)
) WITHOUT ROWID;

-- Blocks of 64 consecutive chunks (32,768 points): count, sum, extremes and time range, kept up to
-- date by every append, so a guardrail over a long time window sums a few block rows instead of
-- thousands of chunk rows.
CREATE TABLE metric_blocks (
    series_id    BIGINT  NOT NULL REFERENCES metric_series (id),
    block_no     BIGINT  NOT NULL,
    point_count  BIGINT  NOT NULL,
    value_sum    REAL    NOT NULL,
    low_value    REAL    NOT NULL,
    high_value   REAL    NOT NULL,
    at_min       BIGINT  NOT NULL,
    at_max       BIGINT  NOT NULL,
    PRIMARY KEY (series_id, block_no)
) WITHOUT ROWID;

CREATE TABLE metric_chunk_points (
    series_id    BIGINT  NOT NULL REFERENCES metric_series (id),
    chunk_no     BIGINT  NOT NULL,
    points       BLOB    NOT NULL,
    PRIMARY KEY (series_id, chunk_no)
);

CREATE TABLE guardrails (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    model_id        BIGINT  NOT NULL REFERENCES models (id),
    environment_id  BIGINT  NOT NULL REFERENCES environments (id),
    metric          TEXT    NOT NULL,
    source          TEXT    NOT NULL,
    aggregation     TEXT    NOT NULL,
    window_points   BIGINT,
    window_minutes  BIGINT,
    comparator      TEXT    NOT NULL,
    threshold       REAL    NOT NULL,
    severity        TEXT    NOT NULL,
    updated_at      BIGINT  NOT NULL,
    updated_by      TEXT    NOT NULL
);

CREATE INDEX guardrails_model_idx ON guardrails (model_id, environment_id);

CREATE TABLE version_health (
    version_id      BIGINT  NOT NULL REFERENCES versions (id),
    environment_id  BIGINT  NOT NULL REFERENCES environments (id),
    health          TEXT    NOT NULL,
    evaluated_at    BIGINT  NOT NULL,
    PRIMARY KEY (version_id, environment_id)
);
