-- Comparison rules and observe mode. A comparison rule keeps its settings (direction, tolerance,
-- test, minimum points, confidence) as JSON in `comparison` and leaves the threshold columns
-- empty ('' and 0); `enforced` is 0 while a rule is observed (evaluated and recorded, not counted
-- toward health). Rules from before were enforced and stay so.
ALTER TABLE guardrails ADD COLUMN comparison TEXT;
ALTER TABLE guardrails ADD COLUMN enforced BIGINT NOT NULL DEFAULT 1;

-- Each rule's latest verdict for each version (pass, fail, inconclusive, no_data) and since
-- when; a change is appended to the audit log.
CREATE TABLE guardrail_verdicts (
    guardrail_id  BIGINT NOT NULL REFERENCES guardrails (id) ON DELETE CASCADE,
    version_id    BIGINT NOT NULL REFERENCES versions (id) ON DELETE CASCADE,
    outcome       TEXT   NOT NULL,
    since         BIGINT NOT NULL,
    PRIMARY KEY (guardrail_id, version_id)
);
