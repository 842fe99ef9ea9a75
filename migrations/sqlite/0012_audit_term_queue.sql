-- Search terms queue for the term index: an append stores its entry's terms (a JSON array of
-- words) as one row here, next to the entry, instead of one row per word in audit_terms, whose
-- (term, seq) order puts each word on a page of its own. The server's indexer moves queued terms
-- into audit_terms in batches; searches read both.
CREATE TABLE audit_term_queue (
    seq   INTEGER PRIMARY KEY,
    terms TEXT    NOT NULL
);

DROP TRIGGER audit_appends_store;
CREATE TRIGGER audit_appends_store INSTEAD OF INSERT ON audit_appends
BEGIN
    INSERT INTO audit_entries (
        seq, at, actor, actor_user, actor_token, action, target, model, version, environment,
        before_state, after_state, reason, request_id, client_addr, prev_hash, hash)
    VALUES (
        NEW.seq, NEW.at, NEW.actor, NEW.actor_user, NEW.actor_token, NEW.action, NEW.target,
        NEW.model, NEW.version, NEW.environment, NEW.before_state, NEW.after_state, NEW.reason,
        NEW.request_id, NEW.client_addr, NEW.prev_hash, NEW.hash);
    INSERT INTO audit_term_queue (seq, terms) SELECT NEW.seq, NEW.terms WHERE NEW.terms <> '[]';
END;
