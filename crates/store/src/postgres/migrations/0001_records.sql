-- Request records (the telemetry writer's batches), the feedback on them and what they said
-- and were answered. Text that is compared or ordered is in the "C" collation, so it orders
-- bytewise, as SQLite does. `rowid` orders rows written at the same time, as SQLite's does.
-- The guard flags (`verdicts.rs`) are written with every row; `guard_verdicts` is the JSON
-- array of the verdicts the KPIs read (the elements `GuardFlags::of` reads), NULL when
-- `guards` holds none.
CREATE TABLE requests (
    rowid               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id          TEXT COLLATE "C" NOT NULL,
    started_at_ms       BIGINT NOT NULL,
    endpoint            TEXT COLLATE "C" NOT NULL,
    tenant              TEXT COLLATE "C",
    key_id              TEXT COLLATE "C",
    requested_model     TEXT COLLATE "C",
    model               TEXT COLLATE "C",
    deployment          TEXT COLLATE "C",
    attempts            BIGINT NOT NULL,
    fallback_from       TEXT COLLATE "C",
    stream              BOOLEAN NOT NULL,
    status              BIGINT NOT NULL,
    error_kind          TEXT COLLATE "C",
    latency_ms          DOUBLE PRECISION NOT NULL,
    ttft_ms             DOUBLE PRECISION,
    prompt_tokens       BIGINT NOT NULL,
    completion_tokens   BIGINT NOT NULL,
    usage_counted       BOOLEAN NOT NULL,
    cost_nanos          BIGINT NOT NULL,
    route               TEXT COLLATE "C",
    cache               TEXT COLLATE "C",
    guards              TEXT COLLATE "C",
    config_version      TEXT COLLATE "C",
    baseline_cost_nanos BIGINT NOT NULL,
    cache_similarity    DOUBLE PRECISION,
    prompt              TEXT COLLATE "C",
    rollout             TEXT COLLATE "C",
    guard_refused       BOOLEAN NOT NULL,
    guard_triggered     BOOLEAN NOT NULL,
    guard_spoiled       BOOLEAN NOT NULL,
    guard_verdicts      JSONB
);
CREATE INDEX requests_started ON requests (started_at_ms);
CREATE INDEX requests_key_started ON requests (key_id, started_at_ms);
CREATE INDEX requests_tenant_started ON requests (tenant, started_at_ms);
CREATE INDEX requests_model_started ON requests (model, started_at_ms);
CREATE INDEX requests_request_id ON requests (request_id);

CREATE TABLE feedback (
    rowid         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id    TEXT COLLATE "C" NOT NULL,
    key_id        TEXT COLLATE "C" NOT NULL,
    tenant        TEXT COLLATE "C" NOT NULL,
    created_at_ms BIGINT NOT NULL,
    score         DOUBLE PRECISION,
    outcome       TEXT COLLATE "C",
    comment       TEXT
);
CREATE INDEX feedback_request ON feedback (request_id);

CREATE TABLE request_content (
    rowid         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id    TEXT COLLATE "C" NOT NULL,
    started_at_ms BIGINT NOT NULL,
    body          TEXT NOT NULL
);
CREATE INDEX request_content_request ON request_content (request_id);
CREATE INDEX request_content_started ON request_content (started_at_ms);
