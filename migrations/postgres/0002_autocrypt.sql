-- Autocrypt Level 1 peer state, one row per correspondent address (times are
-- the effective dates of the messages, Unix seconds): the last message seen
-- from them, the key and prefer-encrypt of their newest Autocrypt header,
-- and the newest key gossiped for them.
CREATE TABLE autocrypt_peers (
    address             TEXT PRIMARY KEY NOT NULL,
    last_seen           BIGINT NOT NULL,
    autocrypt_timestamp BIGINT,
    public_key          BYTEA,
    prefer_encrypt      BIGINT NOT NULL DEFAULT 0,
    gossip_timestamp    BIGINT,
    gossip_key          BYTEA
);
