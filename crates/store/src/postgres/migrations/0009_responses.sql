-- The Responses API's stored responses (`responses.rs`), by id, owned by a tenant.
CREATE TABLE responses (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    body       TEXT NOT NULL,
    context    TEXT NOT NULL
);
CREATE INDEX responses_created ON responses (created_ms);
