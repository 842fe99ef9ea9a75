-- Guarded rollback for PostgreSQL: per-environment policies, rollback requests and their reviews, the
-- durable event log (what consoles, SSE clients and webhooks are told), webhooks with their
-- delivery outbox and attempts, and idempotency keys of API writes.

-- How a rollback is guarded in an environment. Booleans are 0/1; lists are JSON text.
CREATE TABLE rollback_policies (
    environment_id        BIGINT  PRIMARY KEY REFERENCES environments (id),
    approvals_required    BIGINT  NOT NULL,
    approval_ttl_minutes  BIGINT  NOT NULL,
    freeze_windows        TEXT    NOT NULL DEFAULT '[]',
    break_glass_roles     TEXT    NOT NULL DEFAULT '["operator"]',
    auto_request          BIGINT  NOT NULL DEFAULT 0,
    updated_at            BIGINT  NOT NULL,
    updated_by            TEXT    NOT NULL
);
INSERT INTO rollback_policies (environment_id, approvals_required, approval_ttl_minutes, updated_at, updated_by)
    SELECT id, CASE WHEN name = 'staging' THEN 0 ELSE 1 END, 60, 0, 'system' FROM environments;

-- A request to move a live version back (or a break-glass rollback, executed at once). At most one
-- request per model and environment is open.
CREATE TABLE rollback_requests (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_id            BIGINT  NOT NULL REFERENCES models (id),
    environment_id      BIGINT  NOT NULL REFERENCES environments (id),
    from_version        BIGINT  NOT NULL,
    to_version          BIGINT  NOT NULL,
    reason              TEXT    NOT NULL,
    kind                TEXT    NOT NULL,
    status              TEXT    NOT NULL,
    approvals_required  BIGINT  NOT NULL,
    requested_by        TEXT    NOT NULL,
    requester           TEXT,
    requested_at        BIGINT  NOT NULL,
    expires_at          BIGINT  NOT NULL,
    closed_at           BIGINT,
    closed_by           TEXT,
    outcome             TEXT    NOT NULL DEFAULT '',
    revision            BIGINT,
    acknowledged_by     TEXT,
    acknowledged_at     BIGINT,
    acknowledgement     TEXT
);
CREATE UNIQUE INDEX rollback_requests_open_key ON rollback_requests (model_id, environment_id) WHERE status = 'open';
CREATE INDEX rollback_requests_status_idx ON rollback_requests (status, id);
CREATE INDEX rollback_requests_target_idx ON rollback_requests (model_id, environment_id, id);

-- The request a live-version change executed, if any.
ALTER TABLE deployment_history ADD COLUMN request_id BIGINT;

-- One decision per reviewer (a username, whichever session or token they used) and request.
CREATE TABLE rollback_reviews (
    request_id  BIGINT  NOT NULL REFERENCES rollback_requests (id),
    reviewer    TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    decision    TEXT    NOT NULL,
    comment     TEXT    NOT NULL,
    at          BIGINT  NOT NULL,
    PRIMARY KEY (request_id, reviewer)
);

-- Changes subscribers are told about, numbered in commit order: each writer takes the next number
-- by updating event_head, which holds the row lock until it commits.
CREATE TABLE events (
    id           BIGINT  PRIMARY KEY,
    at           BIGINT  NOT NULL,
    kind         TEXT    NOT NULL,
    model        TEXT    NOT NULL,
    environment  TEXT,
    payload      TEXT    NOT NULL
);
CREATE TABLE event_head (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    last_id  BIGINT  NOT NULL
);
INSERT INTO event_head (id, last_id) VALUES (1, 0);

-- Where live-version changes are delivered: every model and environment when NULL.
CREATE TABLE webhooks (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url             TEXT    NOT NULL,
    secret          TEXT    NOT NULL,
    model_id        BIGINT  REFERENCES models (id),
    environment_id  BIGINT  REFERENCES environments (id),
    description     TEXT    NOT NULL DEFAULT '',
    active          BIGINT  NOT NULL DEFAULT 1,
    created_at      BIGINT  NOT NULL,
    created_by      TEXT    NOT NULL
);

-- The outbox: one row per webhook and event, written in the transaction of the change.
CREATE TABLE webhook_deliveries (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id       BIGINT  NOT NULL REFERENCES webhooks (id),
    event_id         BIGINT  NOT NULL,
    payload          TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    attempts         BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT  NOT NULL,
    lease_until      BIGINT  NOT NULL DEFAULT 0,
    last_status      BIGINT,
    last_error       TEXT,
    created_at       BIGINT  NOT NULL,
    delivered_at     BIGINT,
    CONSTRAINT webhook_deliveries_event_key UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (status, next_attempt_at);

CREATE TABLE webhook_attempts (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id  BIGINT  NOT NULL REFERENCES webhook_deliveries (id),
    at           BIGINT  NOT NULL,
    status_code  BIGINT,
    error        TEXT,
    duration_ms  BIGINT  NOT NULL
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);

-- The first result of an API write sent with an Idempotency-Key, per user and key.
CREATE TABLE idempotency_keys (
    username      TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    fingerprint   TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    status        BIGINT,
    content_type  TEXT,
    body          TEXT,
    created_at    BIGINT  NOT NULL,
    PRIMARY KEY (username, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
