-- sotto state store, SQLite. Times are Unix seconds.

-- Local identities: one OpenPGP key per local user. `tsk` is the
-- transferable secret key with every secret part encrypted under the
-- passphrase of [store] secret_file; never stored in clear.
CREATE TABLE identities (
    address     TEXT PRIMARY KEY NOT NULL,
    fingerprint TEXT NOT NULL,
    tsk         BLOB NOT NULL,
    created     INTEGER NOT NULL,
    rotated     INTEGER,
    revoked     INTEGER,
    -- Bumped on every change, so that caches on other processes notice.
    generation  INTEGER NOT NULL DEFAULT 1,
    changed     INTEGER NOT NULL
);
CREATE INDEX identities_changed ON identities (changed);

-- Correspondents' public keys and what sotto learned about them.
CREATE TABLE correspondent_keys (
    address     TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    cert        BLOB NOT NULL,
    source      TEXT NOT NULL,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    PRIMARY KEY (address, fingerprint)
);

-- Live OX messages already delivered (a digest of their signed content),
-- so that the same signcrypt arriving again is not shown as new.
CREATE TABLE ox_replay (
    digest  BLOB PRIMARY KEY NOT NULL,
    seen    INTEGER NOT NULL,
    expires INTEGER NOT NULL
);
CREATE INDEX ox_replay_expires ON ox_replay (expires);
CREATE INDEX ox_replay_seen ON ox_replay (seen);
