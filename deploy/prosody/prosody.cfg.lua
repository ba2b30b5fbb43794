-- Prosody behind sotto: /etc/prosody/prosody.cfg.lua (Debian 12, Prosody 0.12).
--
-- Clients never reach Prosody directly. They connect to sotto on 5222
-- (STARTTLS) and 5223 (direct TLS, XEP-0368); sotto ends TLS and talks to
-- Prosody's client port below in plain TCP on loopback, passing SASL through.
-- sotto also has a connection of its own, as the component
-- sotto.example.org, to publish and fetch OpenPGP keys on PEP (see the end
-- of this file; needs `apt-get install prosody-modules` for mod_privilege).
-- See deploy/prosody/README.md. Replace example.org with your domain.

admins = { }

modules_enabled = {
    -- Generally required
    "disco";          -- Service discovery
    "roster";         -- Rosters
    "saslauth";       -- SASL: what sotto passes through (SCRAM-SHA-1, PLAIN)
    "tls";            -- TLS for s2s (federation); c2s TLS ends at sotto

    -- What sotto's users rely on
    "carbons";        -- XEP-0280: all of a user's clients see the chat
    "mam";            -- XEP-0313: the server-side archive (holds ciphertext for OX chats)
    "pep";            -- XEP-0163: where sotto publishes and fetches OpenPGP keys
    "smacks";         -- XEP-0198: stream management; sotto forwards stanzas 1:1
    "ping";           -- XEP-0199

    -- Recommended
    "blocklist"; "bookmarks"; "private"; "vcard4"; "vcard_legacy";
    "csi_simple"; "time"; "uptime"; "version";
    "limits";         -- per-connection rate limits (below)
    "register";       -- lets users change their password (registration stays off)
    "admin_shell";    -- 'prosodyctl shell'
    "posix";
}

modules_disabled = { }

allow_registration = false

-- Client connections: sotto only. Plain TCP on loopback, where nobody but
-- the gateway (and local root) can connect. No direct TLS port here: sotto
-- serves 5223.
c2s_interfaces = { "127.0.0.1" }
c2s_ports = { 5322 }
c2s_direct_tls_ports = { }

-- sotto's service connection (XEP-0114 component), loopback only: sotto's
-- [xmpp] component_upstream = "127.0.0.1:5347".
component_interfaces = { "127.0.0.1" }
component_ports = { 5347 }

-- TLS ends at sotto, so to Prosody every client stream looks unencrypted.
-- Without these two it would offer no SASL at all (c2s_require_encryption
-- defaults to true), or only SCRAM (PLAIN is refused on unencrypted streams
-- by default; LDAP and other external auth backends need PLAIN). The client's
-- side of the connection, to sotto, is always TLS.
c2s_require_encryption = false
allow_unencrypted_plain_auth = true

-- Largest stanza a client stream may carry. sotto encrypts messages on the
-- way in (OpenPGP, base64, plus a fallback body), so what it sends Prosody is
-- larger than what the client sent: keep this well above sotto's
-- xmpp.max_stanza_bytes (256 KiB by default), e.g. twice it.
c2s_stanza_size_limit = 512 * 1024

-- Federation (s2s) is not sotto's business: it stays on Prosody's own
-- port 5269, with the domain's certificate (certificates = "certs" below).
s2s_secure_auth = true

-- mod_limits counts per connection, so it still works although every client
-- arrives from 127.0.0.1.
limits = {
    c2s = { rate = "10kb/s"; };
    s2sin = { rate = "30kb/s"; };
}

authentication = "internal_hashed"
storage = "internal"

-- The archive. Keep everything by default; with sotto, OX chats are stored
-- as ciphertext (only the fallback notice is readable).
default_archive_policy = true
archive_expires_after = "1y"

pidfile = "/run/prosody/prosody.pid"
log = {
    -- Every client appears as 127.0.0.1 here; sotto's log has their addresses.
    info = "/var/log/prosody/prosody.log";
    error = "/var/log/prosody/prosody.err";
    { levels = { "error" }; to = "syslog"; };
}

certificates = "certs"

VirtualHost "example.org"
    -- XEP-0356 (mod_privilege, Debian package prosody-modules): sotto's
    -- component may send pubsub requests of type "set" as any user of this
    -- host. That is how it publishes each user's OpenPGP key to the user's
    -- own PEP nodes (only an account's owner may publish there). Fetching
    -- keys needs no privilege: the key nodes are open.
    modules_enabled = { "privilege" }
    -- With several sotto replicas, one Component per replica (below), each
    -- listed here with the same grant.
    privileged_entities = {
        ["sotto.example.org"] = {
            iq = { ["http://jabber.org/protocol/pubsub"] = "set" };
        };
    }

-- sotto itself, as an external component (XEP-0114) on component_ports
-- above. The secret is the first line of sotto's [xmpp] component_secret
-- file: generate one (e.g. `openssl rand -hex 32`) and put it in both
-- places; keep this file readable by root and prosody only. Whoever has it
-- can publish to every user's PEP. mod_privilege must be loaded here too,
-- so that it tells sotto what it may do when it connects.
-- Several sotto replicas: one such section per replica
-- ("sotto-1.example.org", "sotto-2.example.org", ...), same secret, and
-- every name in each replica's [xmpp] component; see README.md.
Component "sotto.example.org"
    component_secret = "REPLACE-with-sotto's-component-secret"
    modules_enabled = { "privilege" }
