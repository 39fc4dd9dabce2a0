-- Route recalibrations (`routing.rs`).
CREATE TABLE router_calibration (
    rowid         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    route         TEXT COLLATE "C" NOT NULL,
    at_ms         BIGINT NOT NULL,
    base_cheap    DOUBLE PRECISION NOT NULL,
    base_balanced DOUBLE PRECISION NOT NULL,
    cheap         DOUBLE PRECISION NOT NULL,
    balanced      DOUBLE PRECISION NOT NULL,
    report        TEXT NOT NULL
);
CREATE INDEX router_calibration_route ON router_calibration (route, at_ms);
