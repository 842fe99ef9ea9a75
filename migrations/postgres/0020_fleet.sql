-- The serving fleet: agent tokens limited to environments, each live-version change's spread
-- through the fleet (on its history row), the agents as last reported, and their transitions.

ALTER TABLE api_tokens ADD COLUMN environments TEXT NOT NULL DEFAULT '[]';

-- How long a change may take to reach every agent before it counts as partially converged.
ALTER TABLE rollback_policies ADD COLUMN convergence_deadline_seconds BIGINT NOT NULL DEFAULT 300;

-- A change's rollout: NULL state for changes made before agents were tracked.
ALTER TABLE deployment_history ADD COLUMN fleet_state TEXT;
ALTER TABLE deployment_history ADD COLUMN deadline_at BIGINT;
ALTER TABLE deployment_history ADD COLUMN converged_at BIGINT;
ALTER TABLE deployment_history ADD COLUMN fleet_serving BIGINT NOT NULL DEFAULT 0;
ALTER TABLE deployment_history ADD COLUMN fleet_agents BIGINT NOT NULL DEFAULT 0;
ALTER TABLE deployment_history ADD COLUMN stragglers TEXT NOT NULL DEFAULT '[]';
CREATE INDEX deployment_history_open_rollouts_idx ON deployment_history (deadline_at)
    WHERE fleet_state IN ('issued', 'propagating');

-- One serving instance of a model in an environment, as it last reported (a heartbeat updates
-- last_seen in place: no index covers the columns a heartbeat changes, so on PostgreSQL the update
-- stays on its page and the table does not grow); removed ones stay for the history of what was
-- served.
CREATE TABLE fleet_agents (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_id        BIGINT NOT NULL REFERENCES models (id),
    environment_id  BIGINT NOT NULL REFERENCES environments (id),
    instance        TEXT   NOT NULL,
    grp             TEXT   NOT NULL,
    state           TEXT   NOT NULL,
    counter         BIGINT NOT NULL,
    version         BIGINT,
    digest          TEXT,
    error           TEXT,
    heartbeat_ms    BIGINT NOT NULL,
    last_seen       BIGINT NOT NULL,
    changed_at      BIGINT NOT NULL,
    removed_at      BIGINT,
    CONSTRAINT fleet_agents_instance_key UNIQUE (model_id, environment_id, instance)
);
ALTER TABLE fleet_agents SET (fillfactor = 50);

-- What an agent served from when: a row per change of state, counter or version, never per heartbeat.
CREATE TABLE fleet_transitions (
    agent_id  BIGINT NOT NULL REFERENCES fleet_agents (id),
    at        BIGINT NOT NULL,
    state     TEXT   NOT NULL,
    counter   BIGINT NOT NULL,
    version   BIGINT
);
CREATE INDEX fleet_transitions_agent_at_idx ON fleet_transitions (agent_id, at);
