//! Which server capabilities pass to clients: those sotto keeps correct
//! with encrypted mailboxes. Removed: what would let the server act on
//! message content sotto rewrites (COMPRESS — sotto must read the stream —,
//! CATENATE/URLAUTH/URL-PARTIAL, server-side PREVIEW/SNIPPET of
//! ciphertext, MULTIAPPEND — each APPEND is encrypted alone), and what the
//! codec cannot parse, so that nothing passes unread (ESEARCH and its
//! kin, LIST-EXTENDED/LIST-STATUS, NOTIFY, SAVEDATE), and SASL channel
//! binding (`-PLUS`), which cannot cross a proxy.

use imap_codec::imap_types::response::Capability;

/// Capability names (upper-case, or prefixes ending in `=`/`-`) removed.
const REMOVED: &[&str] = &[
    "COMPRESS=",
    "CATENATE",
    "URLAUTH",
    "URL-PARTIAL",
    "MULTIAPPEND",
    "PREVIEW",
    "SNIPPET",
    "SAVEDATE",
    "ESEARCH",
    "ESORT",
    "CONTEXT=",
    "SEARCHRES",
    "LIST-EXTENDED",
    "LIST-STATUS",
    "NOTIFY",
    "BINARY",
];

/// Whether `cap` passes to clients.
pub fn keep(cap: &Capability<'_>) -> bool {
    let name = cap.to_string().to_ascii_uppercase();
    if name.starts_with("AUTH=") && name.ends_with("-PLUS") {
        return false;
    }
    !REMOVED.iter().any(|r| {
        if r.ends_with('=') {
            name.starts_with(r)
        } else {
            name == *r || name.starts_with(&format!("{r}="))
        }
    })
}

/// `caps` without what sotto removes. STARTTLS is sotto's own (towards
/// the client): the server's is dropped, and sotto's added when
/// `starttls` (TLS configured, the client not yet on it).
pub fn filtered<'a>(
    caps: impl IntoIterator<Item = Capability<'a>>,
    starttls: bool,
) -> Vec<Capability<'a>> {
    let mut out: Vec<Capability<'a>> = caps
        .into_iter()
        .filter(|c| keep(c) && *c != Capability::StartTls)
        .collect();
    if starttls {
        // Before TLS, sotto takes no LOGIN or AUTHENTICATE (RFC 9051 7.2.2).
        out.retain(|c| *c != Capability::LoginDisabled);
        out.push(Capability::StartTls);
        out.push(Capability::LoginDisabled);
    }
    out
}

#[cfg(test)]
mod tests {
    use imap_codec::decode::Decoder;
    use imap_codec::imap_types::response::{Data, Response};

    #[test]
    fn dovecots_list_is_filtered() {
        let line = b"* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE COMPRESS=DEFLATE AUTH=SCRAM-SHA-256-PLUS AUTH=PLAIN\r\n";
        let (_, resp) = imap_codec::ResponseCodec::default().decode(line).unwrap();
        let Response::Data(Data::Capability(caps)) = resp else {
            panic!("not a capability list");
        };
        let kept: Vec<String> = super::filtered(caps, false)
            .iter()
            .map(|c| c.to_string().to_ascii_uppercase())
            .collect();
        assert_eq!(
            kept.join(" "),
            "IMAP4REV1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT UNSELECT CHILDREN NAMESPACE UIDPLUS CONDSTORE QRESYNC WITHIN MOVE STATUS=SIZE LITERAL+ SPECIAL-USE AUTH=PLAIN"
        );
    }

    /// What clients send for the capabilities that pass must parse, or
    /// sotto would answer BAD for them.
    #[test]
    fn commands_of_kept_capabilities_parse() {
        for line in [
            "a SORT (REVERSE DATE) UTF-8 ALL",
            "a UID SORT (SUBJECT) UTF-8 SINCE 1-Dec-2026",
            "a UID THREAD REFERENCES UTF-8 ALL",
            "a UID MOVE 1:3 Archive",
            "a UID EXPUNGE 4",
            "a ENABLE QRESYNC",
            "a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))",
            "a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)",
            "a SEARCH MODSEQ 620162338 YOUNGER 3600",
            "a STATUS INBOX (MESSAGES SIZE)",
            "a ID (\"name\" \"Thunderbird\")",
            "a NAMESPACE",
            "a UNSELECT",
            "a GETMETADATA \"\" /shared/comment",
            "a LIST \"\" \"*\"",
            "a AUTHENTICATE XOAUTH2 dXNlcj1hAWF1dGg9QmVhcmVyIHQBAQ==",
        ] {
            let bytes = format!("{line}\r\n");
            assert!(
                imap_codec::CommandCodec::default()
                    .decode(bytes.as_bytes())
                    .is_ok(),
                "{line}"
            );
        }
    }
}
