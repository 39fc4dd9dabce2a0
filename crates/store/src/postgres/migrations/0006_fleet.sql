-- What each replica publishes for the fleet's judgement (`fleet.rs`): its latest state of
-- an area (its SLO ledger, a rollout's windows), and the leases that make one replica act.
CREATE TABLE replica_states (
    area        TEXT NOT NULL,
    replica     TEXT NOT NULL,
    body        TEXT NOT NULL,
    saved_at_ms BIGINT NOT NULL,
    PRIMARY KEY (area, replica)
);
CREATE INDEX replica_states_saved ON replica_states (saved_at_ms);
CREATE TABLE leases (
    name          TEXT PRIMARY KEY,
    holder        TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
