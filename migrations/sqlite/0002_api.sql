-- The JSON API: sessions, login throttling, pagoPA payment notices and the
-- phone line's call records. Same columns on SQLite and PostgreSQL.

-- A parent's or delegate's bearer token, stored as its SHA-256 (hex): a
-- copy of the database gives no usable token.
CREATE TABLE sessions (
    token_sha256   TEXT   PRIMARY KEY,
    adult_id       BIGINT NOT NULL REFERENCES adults(id),
    created_at_ms  BIGINT NOT NULL,
    expires_at_ms  BIGINT NOT NULL
);
CREATE INDEX sessions_adult ON sessions(adult_id);

-- Consecutive wrong passwords per login (user code or fiscal code, as typed
-- after normalization), shared by every node on the same database. Rows
-- whose last failure is a day old are forgotten (swept on each failure).
CREATE TABLE login_throttle (
    login            TEXT   PRIMARY KEY,
    failures         BIGINT NOT NULL,
    locked_until_ms  BIGINT NOT NULL,
    last_failure_ms  BIGINT NOT NULL
);
CREATE INDEX login_throttle_last ON login_throttle(last_failure_ms);

-- Avviso di pagamento: a top-up asked for, pending until its receipt.
-- notice_number is set in the transaction that creates the row (its IUV
-- base is the row's id).
CREATE TABLE payments (
    id              INTEGER PRIMARY KEY,
    notice_number   TEXT   UNIQUE,
    child_id        BIGINT NOT NULL REFERENCES children(id),
    payer_id        BIGINT NOT NULL REFERENCES adults(id),
    amount_cents    BIGINT NOT NULL,
    creditor        TEXT   NOT NULL,
    due_date        TEXT   NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    status          TEXT   NOT NULL,
    paid_at_ms      BIGINT
);
CREATE INDEX payments_child ON payments(child_id);

-- R12: one row per phone call. codes: JSON list of {"code": redacted,
-- "valid": bool}; operations: JSON list of what was asked and answered.
CREATE TABLE calls (
    id              INTEGER PRIMARY KEY,
    caller          TEXT   NOT NULL,
    called          TEXT   NOT NULL,
    started_at_ms   BIGINT NOT NULL,
    ended_at_ms     BIGINT,
    codes           TEXT   NOT NULL,
    operations      TEXT   NOT NULL
);
CREATE INDEX calls_started ON calls(started_at_ms);
