-- An entry with no actor user (a system event), no model (identity, policies) or no environment
-- (the registry, MLflow) adds no row to that column's index: searches only ever ask for a value
-- (`column = $1`), which an index of the non-null values answers, and each audited write then
-- changes fewer index pages.
DROP INDEX audit_entries_actor_idx;
DROP INDEX audit_entries_model_idx;
DROP INDEX audit_entries_environment_idx;
CREATE INDEX audit_entries_actor_idx ON audit_entries (actor_user, seq) WHERE actor_user IS NOT NULL;
CREATE INDEX audit_entries_model_idx ON audit_entries (model, seq) WHERE model IS NOT NULL;
CREATE INDEX audit_entries_environment_idx ON audit_entries (environment, seq) WHERE environment IS NOT NULL;
