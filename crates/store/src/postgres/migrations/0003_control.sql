-- The control plane (`control/`): config versions, the audit chain, prompts, flags, rollouts,
-- and the counter replicas poll to notice any of them change. Bodies are kept as the text
-- written (a prompt's body reads back byte for byte).
CREATE TABLE config_versions (
    rowid         BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id            TEXT COLLATE "C" PRIMARY KEY,
    parent        TEXT COLLATE "C",
    author        TEXT NOT NULL,
    message       TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    source        TEXT NOT NULL
);
CREATE INDEX config_versions_created ON config_versions (created_at_ms);
CREATE TABLE config_applied (
    seq        BIGINT PRIMARY KEY,
    version_id TEXT COLLATE "C" NOT NULL REFERENCES config_versions (id),
    at_ms      BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    reason     TEXT NOT NULL
);
CREATE TABLE audit (
    seq       BIGINT PRIMARY KEY,
    at_ms     BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    target    TEXT NOT NULL,
    reason    TEXT NOT NULL,
    diff      TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE TABLE prompt_versions (
    name          TEXT COLLATE "C" NOT NULL,
    version       BIGINT NOT NULL,
    body          TEXT NOT NULL,
    author        TEXT NOT NULL,
    message       TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE prompt_labels (
    name          TEXT COLLATE "C" NOT NULL,
    label         TEXT COLLATE "C" NOT NULL,
    version       BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (name, label),
    FOREIGN KEY (name, version) REFERENCES prompt_versions (name, version)
);
CREATE TABLE flags (
    key           TEXT COLLATE "C" PRIMARY KEY,
    body          TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE TABLE rollouts (
    id            TEXT COLLATE "C" PRIMARY KEY,
    body          TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    active        BOOLEAN NOT NULL
);
CREATE TABLE control_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO control_generation (id, generation) VALUES (1, 0);

-- What is kept forever refuses changes (TRUNCATE included); the audit chain still catches
-- whoever drops these.
CREATE FUNCTION switchyard_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0];
END
$$;
CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION switchyard_refuse_change('the audit log is append-only');
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION switchyard_refuse_change('the audit log is append-only');
CREATE TRIGGER config_versions_no_update BEFORE UPDATE OR DELETE ON config_versions
    FOR EACH ROW EXECUTE FUNCTION switchyard_refuse_change('config versions are immutable');
CREATE TRIGGER config_versions_no_truncate BEFORE TRUNCATE ON config_versions
    FOR EACH STATEMENT EXECUTE FUNCTION switchyard_refuse_change('config versions are immutable');
CREATE TRIGGER prompt_versions_no_update BEFORE UPDATE OR DELETE ON prompt_versions
    FOR EACH ROW EXECUTE FUNCTION switchyard_refuse_change('prompt versions are immutable');
CREATE TRIGGER prompt_versions_no_truncate BEFORE TRUNCATE ON prompt_versions
    FOR EACH STATEMENT EXECUTE FUNCTION switchyard_refuse_change('prompt versions are immutable');
