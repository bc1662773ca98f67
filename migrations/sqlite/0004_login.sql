-- Logins: guesses are counted before the work (issue 13, docs/security.md).
-- Same columns on SQLite and PostgreSQL.

-- login_throttle counted a wrong password after verifying it, so
-- concurrent guesses all passed the lock check first. Its rows are
-- transient (a lock in progress is forgotten by the upgrade).
DROP TABLE login_throttle;

-- Attempts from clients without a valid device token, counted (reserved)
-- before the password is verified, in the same statement as the lock
-- check. One row per adult (`adult:<id>`, whichever of their codes was
-- typed) or per bucket of unknown logins (`unknown:<4 hex digits>` of the
-- login's SHA-256: at most 65,536 rows however many are sprayed). A right
-- password deletes the row; attempts a day apart start a new count.
CREATE TABLE login_attempts (
    login_key        TEXT   PRIMARY KEY,
    attempts         BIGINT NOT NULL,
    locked_until_ms  BIGINT NOT NULL,
    last_attempt_ms  BIGINT NOT NULL
);

-- Devices an adult logged in from (OWASP "device cookies"): the device
-- token's SHA-256, bound to the adult, with its own attempt count and
-- lock, so a lock an attacker causes for untrusted clients does not keep
-- the adult's own devices out. At most 10 per adult (the oldest go),
-- expired ones swept at each login.
CREATE TABLE login_devices (
    token_sha256     TEXT   PRIMARY KEY,
    adult_id         BIGINT NOT NULL REFERENCES adults(id),
    attempts         BIGINT NOT NULL,
    locked_until_ms  BIGINT NOT NULL,
    last_attempt_ms  BIGINT NOT NULL,
    created_at_ms    BIGINT NOT NULL,
    expires_at_ms    BIGINT NOT NULL
);
CREATE INDEX login_devices_adult ON login_devices(adult_id, created_at_ms);
CREATE INDEX login_devices_expiry ON login_devices(expires_at_ms);
