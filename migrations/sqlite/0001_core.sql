-- The bookings core. Dates are ISO 8601 TEXT ('YYYY-MM-DD'), instants are
-- BIGINT milliseconds since the Unix epoch (UTC): the same columns and the
-- same SQL on SQLite and PostgreSQL (docs/decisions.md).

CREATE TABLE ente (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    name                TEXT    NOT NULL,
    timezone            TEXT    NOT NULL,
    cutoff              TEXT    NOT NULL,
    phone_window_opens  TEXT    NOT NULL,
    meal_price_cents    BIGINT  NOT NULL,
    currency            TEXT    NOT NULL,
    helpdesk_phone      TEXT,
    late_requests       TEXT    NOT NULL,
    low_balance_meals   BIGINT  NOT NULL,
    pagopa_creditor     TEXT,
    pagopa_aux_digit    BIGINT,
    pagopa_segregation  TEXT,
    service_started_on  TEXT
);

CREATE TABLE schools (
    id          TEXT   PRIMARY KEY,
    name        TEXT   NOT NULL,
    year_start  TEXT   NOT NULL,
    year_end    TEXT   NOT NULL,
    weekdays    BIGINT NOT NULL
);

CREATE TABLE closures (
    id         INTEGER PRIMARY KEY,
    school_id  TEXT   NOT NULL REFERENCES schools(id),
    date_from  TEXT   NOT NULL,
    date_to    TEXT   NOT NULL,
    reason     TEXT   NOT NULL,
    source     TEXT   NOT NULL
);
CREATE INDEX closures_school ON closures(school_id);

CREATE TABLE classes (
    school_id  TEXT   NOT NULL REFERENCES schools(id),
    id         TEXT   NOT NULL,
    weekdays   BIGINT,
    PRIMARY KEY (school_id, id)
);

CREATE TABLE adults (
    id             INTEGER PRIMARY KEY,
    fiscal_code    TEXT NOT NULL UNIQUE,
    first_name     TEXT NOT NULL,
    last_name      TEXT NOT NULL,
    email          TEXT,
    phone          TEXT,
    password_hash  TEXT
);

CREATE TABLE children (
    id                INTEGER PRIMARY KEY,
    user_code         TEXT   NOT NULL UNIQUE,
    cancel_code       TEXT   NOT NULL UNIQUE,
    first_name        TEXT   NOT NULL,
    last_name         TEXT   NOT NULL,
    fiscal_code       TEXT   NOT NULL,
    school_id         TEXT   NOT NULL REFERENCES schools(id),
    class_id          TEXT   NOT NULL,
    parent_id         BIGINT NOT NULL REFERENCES adults(id),
    diet              TEXT   NOT NULL,
    meal_price_cents  BIGINT,
    version           BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE child_delegates (
    child_id  BIGINT NOT NULL REFERENCES children(id),
    adult_id  BIGINT NOT NULL REFERENCES adults(id),
    PRIMARY KEY (child_id, adult_id)
);

CREATE TABLE day_marks (
    child_id  BIGINT NOT NULL REFERENCES children(id),
    date      TEXT   NOT NULL,
    kind      TEXT   NOT NULL,
    channel   TEXT   NOT NULL,
    actor     TEXT   NOT NULL,
    at_ms     BIGINT NOT NULL,
    PRIMARY KEY (child_id, date)
);
CREATE INDEX day_marks_date ON day_marks(date);

CREATE TABLE suspensions (
    id          INTEGER PRIMARY KEY,
    child_id    BIGINT NOT NULL REFERENCES children(id),
    date_from   TEXT   NOT NULL,
    date_until  TEXT,
    channel     TEXT   NOT NULL,
    actor       TEXT   NOT NULL,
    at_ms       BIGINT NOT NULL
);
CREATE INDEX suspensions_child ON suspensions(child_id);

-- One row per day something happened to; closed_at_ms set by the closing.
CREATE TABLE days (
    date          TEXT PRIMARY KEY,
    closed_at_ms  BIGINT
);

-- The frozen status of every child with service on a closed day.
CREATE TABLE attendance (
    date       TEXT   NOT NULL,
    child_id   BIGINT NOT NULL REFERENCES children(id),
    status     TEXT   NOT NULL,
    school_id  TEXT   NOT NULL,
    class_id   TEXT   NOT NULL,
    diet       TEXT   NOT NULL,
    PRIMARY KEY (date, child_id)
);

CREATE TABLE ledger (
    id            INTEGER PRIMARY KEY,
    child_id      BIGINT NOT NULL REFERENCES children(id),
    at_ms         BIGINT NOT NULL,
    kind          TEXT   NOT NULL,
    amount_cents  BIGINT NOT NULL,
    date          TEXT,
    reference     TEXT,
    description   TEXT   NOT NULL
);
CREATE INDEX ledger_child ON ledger(child_id);
-- A meal is charged once per child and day, however often a day is closed.
CREATE UNIQUE INDEX ledger_one_meal ON ledger(child_id, date) WHERE kind = 'meal';
CREATE UNIQUE INDEX ledger_one_reference ON ledger(reference) WHERE reference IS NOT NULL;

CREATE TABLE audit (
    id        INTEGER PRIMARY KEY,
    at_ms     BIGINT NOT NULL,
    actor     TEXT   NOT NULL,
    channel   TEXT   NOT NULL,
    child_id  BIGINT,
    action    TEXT   NOT NULL,
    detail    TEXT   NOT NULL
);
CREATE INDEX audit_child ON audit(child_id);

CREATE TABLE news (
    id     INTEGER PRIMARY KEY,
    date   TEXT NOT NULL,
    title  TEXT NOT NULL,
    body   TEXT NOT NULL,
    UNIQUE (date, title)
);
