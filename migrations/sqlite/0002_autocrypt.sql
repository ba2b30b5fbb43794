-- Autocrypt Level 1 peer state, one row per correspondent address (times are
-- the effective dates of the messages, Unix seconds): the last message seen
-- from them, the key and prefer-encrypt of their newest Autocrypt header,
-- and the newest key gossiped for them.
CREATE TABLE autocrypt_peers (
    address             TEXT PRIMARY KEY NOT NULL,
    last_seen           INTEGER NOT NULL,
    autocrypt_timestamp INTEGER,
    public_key          BLOB,
    prefer_encrypt      INTEGER NOT NULL DEFAULT 0,
    gossip_timestamp    INTEGER,
    gossip_key          BLOB
);
