-- An audit append in one statement: inserting into the view audit_appends (an entry's columns and
-- `terms`, a JSON array of its words) stores the entry and indexes each word; the entry must link
-- to the chain head, and storing it moves the head (number, hash, time) to it.
CREATE VIEW audit_appends AS
    SELECT
        seq, at, actor, actor_user, actor_token, action, target, model, version, environment,
        before_state, after_state, reason, request_id, client_addr, prev_hash, hash,
        '[]'::text AS terms
    FROM audit_entries;

CREATE FUNCTION audit_append_store() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_entries (
        seq, at, actor, actor_user, actor_token, action, target, model, version, environment,
        before_state, after_state, reason, request_id, client_addr, prev_hash, hash)
    VALUES (
        NEW.seq, NEW.at, NEW.actor, NEW.actor_user, NEW.actor_token, NEW.action, NEW.target,
        NEW.model, NEW.version, NEW.environment, NEW.before_state, NEW.after_state, NEW.reason,
        NEW.request_id, NEW.client_addr, NEW.prev_hash, NEW.hash);
    INSERT INTO audit_terms (term, seq) SELECT word, NEW.seq FROM jsonb_array_elements_text(NEW.terms::jsonb) AS word;
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_appends_store INSTEAD OF INSERT ON audit_appends
    FOR EACH ROW EXECUTE FUNCTION audit_append_store();

CREATE FUNCTION audit_entry_link() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.prev_hash IS DISTINCT FROM (SELECT hash FROM audit_head WHERE id = 1) THEN
        RAISE EXCEPTION 'audit entry % does not link to the chain head', NEW.seq;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_entries_link BEFORE INSERT ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_entry_link();
CREATE OR REPLACE FUNCTION audit_head_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE audit_head SET seq = NEW.seq, hash = NEW.hash, at = NEW.at WHERE id = 1;
    RETURN NULL;
END
$$;
