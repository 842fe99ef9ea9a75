-- Checkpoints sign the Merkle root (RFC 9162) of every entry hash up to theirs; older ones have none.
ALTER TABLE audit_checkpoints ADD COLUMN root TEXT;
