-- An MLflow alias set is an ordinary audited write (read in the write, then upsert): the view that
-- checked a move against what it was read as outside the write is no longer used.
DROP TRIGGER IF EXISTS alias_moves_move ON alias_moves;
DROP VIEW IF EXISTS alias_moves;
DROP FUNCTION IF EXISTS alias_move();
