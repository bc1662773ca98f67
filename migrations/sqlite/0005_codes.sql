-- Cancel codes cannot be guessed in practice (issue 13, docs/security.md).

-- Codes are stored as HMAC-SHA256(key, code), 64 hexadecimal digits, in
-- the same `cancel_code` column (its unique index keeps codes unique).
-- The key is not in the database: migrating cannot hash, so the codes
-- stay clear here and the store hashes them in place the first time it
-- opens the database with a key (Store::adopt_code_key), recording the
-- key's fingerprint below. The length of each code is kept apart: the
-- threat model counts short codes (bookings::guessing::CodeSpace).
ALTER TABLE children ADD COLUMN cancel_code_digits BIGINT NOT NULL DEFAULT 0;
UPDATE children SET cancel_code_digits = LENGTH(cancel_code);

-- The key's fingerprint (a keyed hash of a fixed text): another key is
-- refused rather than finding no code.
CREATE TABLE code_key (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    fingerprint  TEXT NOT NULL
);

-- The ente's minimum length of new codes (the import warns about shorter
-- ones; `mensa codes reissue` replaces them).
ALTER TABLE ente ADD COLUMN cancel_code_min_digits BIGINT NOT NULL DEFAULT 5;

-- The phone line's counts of codes tried, shared by every node: a caller
-- number's back-off (scope 'caller', subject a keyed hash of the number
-- or 'anonymous'), each trunk's budget ('trunk', its allow-list network)
-- and the line's ('line', '*'). tat_ms is GCRA's theoretical arrival
-- time; last_ms and prev_ms the last two counted attempts of a caller.
-- A row whose tat_ms has passed counts nothing and is swept.
CREATE TABLE code_guards (
    scope    TEXT   NOT NULL,
    subject  TEXT   NOT NULL,
    tat_ms   BIGINT NOT NULL,
    last_ms  BIGINT NOT NULL,
    prev_ms  BIGINT NOT NULL,
    PRIMARY KEY (scope, subject)
);
CREATE INDEX code_guards_tat ON code_guards(tat_ms);

-- Codes a caller number used successfully (keyed hashes of both): no
-- guess, so accepted while the line is guarded. At most a few numbers per
-- code (the oldest are dropped) and forgotten when unused for long.
CREATE TABLE code_bindings (
    caller     TEXT   NOT NULL,
    code_hash  TEXT   NOT NULL,
    used_ms    BIGINT NOT NULL,
    PRIMARY KEY (caller, code_hash)
);
CREATE INDEX code_bindings_code ON code_bindings(code_hash);
CREATE INDEX code_bindings_used ON code_bindings(used_ms);
