-- Dashboard sessions (`sessions.rs`), by the SHA-256 of their token.
CREATE TABLE dashboard_sessions (
    token         BYTEA PRIMARY KEY,
    admin         BYTEA NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
CREATE INDEX dashboard_sessions_expires ON dashboard_sessions (expires_at_ms);
