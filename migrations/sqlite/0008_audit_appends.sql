-- An audit append in one statement: inserting into the view audit_appends (an entry's columns and
-- `terms`, a JSON array of its words) stores the entry and indexes each word; the entry must link
-- to the chain head, and storing it moves the head (number, hash, time) to it.
CREATE VIEW audit_appends AS
    SELECT
        seq, at, actor, actor_user, actor_token, action, target, model, version, environment,
        before_state, after_state, reason, request_id, client_addr, prev_hash, hash,
        '[]' AS terms
    FROM audit_entries;

CREATE TRIGGER audit_appends_store INSTEAD OF INSERT ON audit_appends
BEGIN
    INSERT INTO audit_entries (
        seq, at, actor, actor_user, actor_token, action, target, model, version, environment,
        before_state, after_state, reason, request_id, client_addr, prev_hash, hash)
    VALUES (
        NEW.seq, NEW.at, NEW.actor, NEW.actor_user, NEW.actor_token, NEW.action, NEW.target,
        NEW.model, NEW.version, NEW.environment, NEW.before_state, NEW.after_state, NEW.reason,
        NEW.request_id, NEW.client_addr, NEW.prev_hash, NEW.hash);
    INSERT INTO audit_terms (term, seq) SELECT value, NEW.seq FROM json_each(NEW.terms);
END;

CREATE TRIGGER audit_entries_link BEFORE INSERT ON audit_entries
WHEN NEW.prev_hash IS NOT (SELECT hash FROM audit_head WHERE id = 1)
BEGIN
    SELECT RAISE(ABORT, 'audit entry does not link to the chain head');
END;
DROP TRIGGER audit_head_follows;
CREATE TRIGGER audit_head_follows AFTER INSERT ON audit_entries
BEGIN
    UPDATE audit_head SET seq = NEW.seq, hash = NEW.hash, at = NEW.at WHERE id = 1;
END;
