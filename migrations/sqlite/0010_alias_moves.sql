-- A plain alias moved in one statement that checks what it was read as: inserting into the view
-- alias_moves (the model's id, the alias, the version it moves to, the version it pointed at when
-- read — NULL for none — and who moved it when) points the alias at the version, or refuses the
-- move as a stale write when the alias no longer points where it was read, the version does not
-- exist, or an environment has taken the alias's name. So the move can travel in the round trip of
-- its audit entry, whose before-state it must match.
CREATE VIEW alias_moves AS
    SELECT model_id, alias, version_number, version_number AS read_version, updated_at, updated_by
    FROM model_aliases;

CREATE TRIGGER alias_moves_move INSTEAD OF INSERT ON alias_moves
BEGIN
    SELECT RAISE(ABORT, 'stale write: the alias, its version or an environment of its name changed since it was read')
    WHERE (SELECT version_number FROM model_aliases WHERE model_id = NEW.model_id AND alias = NEW.alias)
              IS NOT NEW.read_version
       OR NOT EXISTS (SELECT 1 FROM versions WHERE model_id = NEW.model_id AND number = NEW.version_number)
       OR EXISTS (SELECT 1 FROM environments WHERE name = NEW.alias);
    UPDATE model_aliases SET version_number = NEW.version_number, updated_at = NEW.updated_at, updated_by = NEW.updated_by
    WHERE model_id = NEW.model_id AND alias = NEW.alias;
    INSERT INTO model_aliases (model_id, alias, version_number, updated_at, updated_by)
    SELECT NEW.model_id, NEW.alias, NEW.version_number, NEW.updated_at, NEW.updated_by
    WHERE NEW.read_version IS NULL;
END;
