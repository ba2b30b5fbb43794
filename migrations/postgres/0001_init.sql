-- sotto state store, PostgreSQL. Times are Unix seconds.

-- Local identities: one OpenPGP key per local user. `tsk` is the
-- transferable secret key with every secret part encrypted under the
-- passphrase of [store] secret_file; never stored in clear.
CREATE TABLE identities (
    address     TEXT PRIMARY KEY NOT NULL,
    fingerprint TEXT NOT NULL,
    tsk         BYTEA NOT NULL,
    created     BIGINT NOT NULL,
    rotated     BIGINT,
    revoked     BIGINT,
    -- Bumped on every change, so that caches on other processes notice.
    generation  BIGINT NOT NULL DEFAULT 1,
    changed     BIGINT NOT NULL
);
CREATE INDEX identities_changed ON identities (changed);

-- Correspondents' public keys and what sotto learned about them.
CREATE TABLE correspondent_keys (
    address     TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    cert        BYTEA NOT NULL,
    source      TEXT NOT NULL,
    first_seen  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    PRIMARY KEY (address, fingerprint)
);

-- Live OX messages already delivered (a digest of their signed content),
-- so that the same signcrypt arriving again is not shown as new.
CREATE TABLE ox_replay (
    digest  BYTEA PRIMARY KEY NOT NULL,
    seen    BIGINT NOT NULL,
    expires BIGINT NOT NULL
);
CREATE INDEX ox_replay_expires ON ox_replay (expires);
CREATE INDEX ox_replay_seen ON ox_replay (seen);
