-- The chain head follows the last entry: storing an entry moves the head's hash and time in the
-- same statement, so an append costs one statement less.
CREATE TRIGGER audit_head_follows AFTER INSERT ON audit_entries
BEGIN
    UPDATE audit_head SET hash = NEW.hash, at = NEW.at WHERE id = 1;
END;
