-- The audit log for PostgreSQL: an append-only hash chain of entries, its head, and signed checkpoints.
-- Triggers refuse UPDATE, DELETE and TRUNCATE; the head row (locked by each append) serialises
-- writers from every server process into one chain.

CREATE TABLE audit_entries (
    seq          BIGINT  PRIMARY KEY,
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
);

CREATE TABLE audit_checkpoints (
    seq         BIGINT  PRIMARY KEY,
    hash        TEXT    NOT NULL,
    signed_at   TEXT    NOT NULL,
    key_id      TEXT    NOT NULL,
    public_key  TEXT    NOT NULL,
    signature   TEXT    NOT NULL
);

CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only (% on %)', TG_OP, TG_TABLE_NAME;
END;
$$;

CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
