-- The audit log for SQLite: an append-only hash chain of entries, its head, and signed checkpoints.
-- Triggers refuse UPDATE and DELETE of entries and checkpoints; the head row serialises appends.

CREATE TABLE audit_entries (
    seq          INTEGER PRIMARY KEY,
    at           BIGINT  NOT NULL,
    actor        TEXT    NOT NULL,
    actor_user   TEXT,
    actor_token  TEXT,
    action       TEXT    NOT NULL,
    target       TEXT    NOT NULL,
    model        TEXT,
    version      BIGINT,
    environment  TEXT,
    before_state TEXT,
    after_state  TEXT,
    reason       TEXT,
    request_id   TEXT,
    client_addr  TEXT,
    prev_hash    TEXT    NOT NULL,
    hash         TEXT    NOT NULL
);
CREATE INDEX audit_entries_at_idx ON audit_entries (at, seq);
CREATE INDEX audit_entries_actor_idx ON audit_entries (actor_user, seq);
CREATE INDEX audit_entries_action_idx ON audit_entries (action, seq);
CREATE INDEX audit_entries_model_idx ON audit_entries (model, seq);
CREATE INDEX audit_entries_environment_idx ON audit_entries (environment, seq);

-- The last entry's number, hash and time: entry times never go backwards, so a time range is a
-- range of sequence numbers.
CREATE TABLE audit_head (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    seq   BIGINT  NOT NULL,
    hash  TEXT    NOT NULL,
    at    BIGINT  NOT NULL
);
INSERT INTO audit_head (id, seq, hash, at) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000', 0);

-- The words of each entry, for free-text search (an index, not evidence: the chain covers entries).
CREATE TABLE audit_terms (
    term  TEXT    NOT NULL,
    seq   BIGINT  NOT NULL,
    PRIMARY KEY (term, seq)
) WITHOUT ROWID;

CREATE TABLE audit_checkpoints (
    seq         INTEGER PRIMARY KEY,
    hash        TEXT    NOT NULL,
    signed_at   TEXT    NOT NULL,
    key_id      TEXT    NOT NULL,
    public_key  TEXT    NOT NULL,
    signature   TEXT    NOT NULL
);

CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
