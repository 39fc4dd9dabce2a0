-- The Batch API (`batches.rs`): uploaded and produced files with their bytes, batches, and
-- each batch's lines with their status, attempts, lease and result.
CREATE TABLE batch_files (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    filename   TEXT NOT NULL,
    purpose    TEXT NOT NULL,
    bytes      BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_at BIGINT,
    content    BYTEA NOT NULL
);
CREATE INDEX batch_files_tenant ON batch_files (tenant, created_ms);
CREATE INDEX batch_files_expires ON batch_files (expires_at);
CREATE TABLE batches (
    id                TEXT PRIMARY KEY,
    tenant            TEXT NOT NULL,
    key_id            TEXT NOT NULL,
    key_hash          TEXT NOT NULL,
    endpoint          TEXT NOT NULL,
    input_file_id     TEXT NOT NULL,
    completion_window TEXT NOT NULL,
    status            TEXT NOT NULL,
    errors            TEXT,
    metadata          TEXT,
    output_file_id    TEXT,
    error_file_id     TEXT,
    created_ms        BIGINT NOT NULL,
    in_progress_at    BIGINT,
    expires_at        BIGINT NOT NULL,
    finalizing_at     BIGINT,
    completed_at      BIGINT,
    failed_at         BIGINT,
    expired_at        BIGINT,
    cancelling_at     BIGINT,
    cancelled_at      BIGINT,
    total             BIGINT NOT NULL,
    completed         BIGINT NOT NULL,
    failed            BIGINT NOT NULL
);
CREATE INDEX batches_tenant ON batches (tenant, created_ms);
CREATE INDEX batches_status ON batches (status, created_ms);
CREATE TABLE batch_lines (
    batch_id       TEXT NOT NULL,
    line           BIGINT NOT NULL,
    custom_id      TEXT NOT NULL,
    body           TEXT NOT NULL,
    status         TEXT NOT NULL,
    attempts       BIGINT NOT NULL,
    not_before_ms  BIGINT NOT NULL,
    lease_owner    TEXT,
    lease_until_ms BIGINT,
    result         TEXT,
    PRIMARY KEY (batch_id, line)
);
CREATE INDEX batch_lines_status ON batch_lines (batch_id, status);
CREATE INDEX batch_lines_owner ON batch_lines (lease_owner);
