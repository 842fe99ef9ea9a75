-- Each entry's seal: an HMAC of its hash under a key only the signer holds (with that key's id),
-- so an entry rewritten with a recomputed hash is caught at that very entry. Older entries have none.
ALTER TABLE audit_entries ADD COLUMN seal TEXT;

DROP TRIGGER audit_appends_store;
DROP VIEW audit_appends;
CREATE VIEW audit_appends AS
    SELECT
        seq, at, actor, actor_user, actor_token, action, target, model, version, environment,
        before_state, after_state, reason, request_id, client_addr, prev_hash, hash,
        '[]' AS terms, seal
    FROM audit_entries;

CREATE TRIGGER audit_appends_store INSTEAD OF INSERT ON audit_appends
BEGIN
    INSERT INTO audit_entries (
        seq, at, actor, actor_user, actor_token, action, target, model, version, environment,
        before_state, after_state, reason, request_id, client_addr, prev_hash, hash, seal)
    VALUES (
        NEW.seq, NEW.at, NEW.actor, NEW.actor_user, NEW.actor_token, NEW.action, NEW.target,
        NEW.model, NEW.version, NEW.environment, NEW.before_state, NEW.after_state, NEW.reason,
        NEW.request_id, NEW.client_addr, NEW.prev_hash, NEW.hash, NEW.seal);
    INSERT INTO audit_term_queue (seq, terms) SELECT NEW.seq, NEW.terms WHERE NEW.terms <> '[]';
END;
