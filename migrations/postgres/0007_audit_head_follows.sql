-- The chain head follows the last entry: storing an entry moves the head's hash and time in the
-- same statement, so an append costs one statement less.
CREATE FUNCTION audit_head_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE audit_head SET hash = NEW.hash, at = NEW.at WHERE id = 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER audit_head_follows AFTER INSERT ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_head_follow();
