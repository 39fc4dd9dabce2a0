-- The SLO runtime's state (`slo.rs`), one JSON document replaced each time.
CREATE TABLE slo_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    body        TEXT NOT NULL,
    saved_at_ms BIGINT NOT NULL
);
