//! FETCH of message content, answered from the message sotto shows.
//!
//! Any item that depends on a message's content (BODY[...] with every
//! section and partial, RFC822, RFC822.HEADER/.TEXT/.SIZE, BODYSTRUCTURE,
//! BODY, ENVELOPE) would show the ciphertext if the server answered it. So
//! sotto sends the server the same FETCH with those items replaced by one
//! `BODY.PEEK[]` (`BODY[]` when the client's items set `\Seen`), opens the
//! message if it is encrypted to the user, and computes every item the
//! client asked for from that one message. Items that do not depend on
//! content (FLAGS, UID, INTERNALDATE, MODSEQ) come from the server.

use imap_codec::CommandCodec;
use imap_codec::encode::Encoder;
use imap_codec::imap_types::IntoStatic as _;
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::{IString, NString, Vec1};
use imap_codec::imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName,
};

use super::view::Entity;

/// A client FETCH in flight whose content items sotto answers.
#[derive(Debug)]
pub struct Plan {
    pub tag: String,
    /// The content items the client asked for, in its order.
    wanted: Vec<MessageDataItemName<'static>>,
}

/// What becomes of a client command.
pub enum Rewrite {
    /// Not a FETCH of content: forwarded as it came.
    Pass,
    /// The FETCH to send instead, and how to answer it.
    Plan(Plan, Vec<u8>),
    /// Refused with this BAD line.
    Refuse(Vec<u8>),
}

fn is_content(name: &MessageDataItemName<'_>) -> bool {
    use MessageDataItemName as N;
    matches!(
        name,
        N::Body
            | N::BodyExt { .. }
            | N::BodyStructure
            | N::Envelope
            | N::Rfc822
            | N::Rfc822Header
            | N::Rfc822Size
            | N::Rfc822Text
    )
}

/// Whether the server sets `\Seen` for this item (RFC 9051 6.4.5).
fn sets_seen(name: &MessageDataItemName<'_>) -> bool {
    use MessageDataItemName as N;
    matches!(
        name,
        N::Rfc822 | N::Rfc822Text | N::BodyExt { peek: false, .. }
    )
}

/// How `cmd` (a FETCH or UID FETCH) goes to the server.
pub fn rewrite(cmd: &Command<'static>) -> Rewrite {
    let CommandBody::Fetch {
        sequence_set,
        macro_or_item_names,
        uid,
        modifiers,
    } = &cmd.body
    else {
        return Rewrite::Pass;
    };
    let names: Vec<MessageDataItemName<'static>> = match macro_or_item_names {
        MacroOrMessageDataItemNames::Macro(m) => {
            m.expand().into_iter().map(|n| n.into_static()).collect()
        }
        MacroOrMessageDataItemNames::MessageDataItemNames(n) => n.clone(),
    };
    if names.iter().any(|n| {
        matches!(
            n,
            MessageDataItemName::Binary { .. } | MessageDataItemName::BinarySize { .. }
        )
    }) {
        return Rewrite::Refuse(
            format!(
                "{} BAD BINARY is not offered through sotto; fetch BODY[] instead\r\n",
                cmd.tag.as_ref()
            )
            .into_bytes(),
        );
    }
    if !names.iter().any(is_content) {
        return Rewrite::Pass;
    }
    let seen = names.iter().any(sets_seen);
    let (wanted, mut kept): (Vec<_>, Vec<_>) = names.into_iter().partition(is_content);
    kept.push(MessageDataItemName::BodyExt {
        section: None,
        partial: None,
        peek: !seen,
    });
    let out = Command {
        tag: cmd.tag.clone(),
        body: CommandBody::Fetch {
            sequence_set: sequence_set.clone(),
            macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(kept),
            uid: *uid,
            modifiers: modifiers.clone(),
        },
    };
    Rewrite::Plan(
        Plan {
            tag: cmd.tag.as_ref().to_owned(),
            wanted,
        },
        CommandCodec::default().encode(&out).dump(),
    )
}

/// The whole message a server FETCH response carries for a plan: the data
/// of its `BODY[]` item.
pub fn whole_message<'a>(items: &'a [MessageDataItem<'static>]) -> Option<&'a [u8]> {
    items.iter().find_map(|i| match i {
        MessageDataItem::BodyExt {
            section: None,
            origin: None,
            data: NString(Some(s)),
        } => Some(s.as_ref()),
        _ => None,
    })
}

impl Plan {
    /// The client's answer: the server's items that are not content, then
    /// each content item the client asked for, computed from `message`.
    pub fn answer(
        &self,
        server: &[MessageDataItem<'static>],
        message: &[u8],
    ) -> Option<Vec1<MessageDataItem<'static>>> {
        // The MIME tree only when an item needs it (not for BODY[] alone).
        let tree = std::cell::OnceCell::new();
        let view = || tree.get_or_init(|| Entity::message(message));
        let mut out: Vec<MessageDataItem<'static>> = server
            .iter()
            .filter(|i| {
                !matches!(
                    i,
                    MessageDataItem::BodyExt { .. }
                        | MessageDataItem::Body(_)
                        | MessageDataItem::BodyStructure(_)
                        | MessageDataItem::Envelope(_)
                        | MessageDataItem::Rfc822(_)
                        | MessageDataItem::Rfc822Header(_)
                        | MessageDataItem::Rfc822Text(_)
                        | MessageDataItem::Rfc822Size(_)
                )
            })
            .cloned()
            .collect();
        for name in &self.wanted {
            use MessageDataItemName as N;
            out.push(match name {
                N::Body => MessageDataItem::Body(view().structure(false)),
                N::BodyStructure => MessageDataItem::BodyStructure(view().structure(true)),
                N::Envelope => MessageDataItem::Envelope(view().envelope()),
                N::Rfc822 => MessageDataItem::Rfc822(data(message)),
                N::Rfc822Header => MessageDataItem::Rfc822Header(data(view().header)),
                N::Rfc822Text => MessageDataItem::Rfc822Text(data(view().body)),
                N::Rfc822Size => {
                    MessageDataItem::Rfc822Size(u32::try_from(message.len()).unwrap_or(u32::MAX))
                }
                N::BodyExt {
                    section, partial, ..
                } => {
                    let bytes = match section {
                        None => Some(message.to_vec()),
                        Some(_) => view().section(message, section.as_ref()),
                    };
                    let (origin, bytes) = match (partial, bytes) {
                        (Some((from, len)), Some(b)) => {
                            let start = (*from as usize).min(b.len());
                            let end = start.saturating_add(len.get() as usize).min(b.len());
                            (Some(*from), Some(b[start..end].to_vec()))
                        }
                        (Some((from, _)), None) => (Some(*from), None),
                        (None, b) => (None, b),
                    };
                    MessageDataItem::BodyExt {
                        section: section.clone(),
                        origin,
                        data: bytes.map_or(NString(None), |b| data(&b)),
                    }
                }
                // Not content: already among the server's items.
                _ => continue,
            });
        }
        Vec1::try_from(out).ok()
    }
}

/// Bytes as an IMAP string: quoted if short and quotable, else a literal
/// (made directly: the codec's own choice copies and scans the bytes
/// twice).
fn data(bytes: &[u8]) -> NString<'static> {
    if bytes.len() <= 64 {
        return NString(IString::try_from(bytes.to_vec()).ok());
    }
    NString(
        imap_codec::imap_types::core::Literal::try_from(bytes.to_vec())
            .ok()
            .map(IString::Literal),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::test_command as command;

    #[test]
    fn content_items_become_one_whole_body() {
        let cmd =
            command(b"A1 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)] ENVELOPE)\r\n");
        let Rewrite::Plan(plan, out) = rewrite(&cmd) else {
            panic!("not rewritten");
        };
        assert_eq!(out, b"A1 UID FETCH 1:* (FLAGS BODY.PEEK[])\r\n");
        assert_eq!(plan.wanted.len(), 2);
    }

    #[test]
    fn items_that_set_seen_keep_setting_it() {
        let cmd = command(b"A1 FETCH 1 (RFC822.HEADER BODY[TEXT])\r\n");
        let Rewrite::Plan(_, out) = rewrite(&cmd) else {
            panic!("not rewritten");
        };
        assert_eq!(out, b"A1 FETCH 1 BODY[]\r\n");
        let cmd = command(b"A2 FETCH 1 FAST\r\n");
        let Rewrite::Plan(_, out) = rewrite(&cmd) else {
            panic!("not rewritten");
        };
        assert_eq!(out, b"A2 FETCH 1 (FLAGS INTERNALDATE BODY.PEEK[])\r\n");
    }

    #[test]
    fn flags_only_pass() {
        assert!(matches!(
            rewrite(&command(b"A1 FETCH 1:* (FLAGS UID)\r\n")),
            Rewrite::Pass
        ));
        assert!(matches!(rewrite(&command(b"A1 NOOP\r\n")), Rewrite::Pass));
        assert!(matches!(
            rewrite(&command(b"A1 FETCH 1 (BINARY.PEEK[1])\r\n")),
            Rewrite::Refuse(_)
        ));
    }

    #[test]
    fn answers_sections_partials_and_sizes() {
        let cmd = command(b"A1 FETCH 1 (RFC822.SIZE BODY.PEEK[TEXT]<2.3> BODY.PEEK[1.MIME])\r\n");
        let Rewrite::Plan(plan, _) = rewrite(&cmd) else {
            panic!("not rewritten");
        };
        let message = b"Subject: s\r\n\r\nhello world\r\n";
        let server = vec![MessageDataItem::Flags(Vec::new())];
        let items = plan.answer(&server, message).unwrap();
        let items = items.as_ref();
        assert_eq!(items[0], MessageDataItem::Flags(Vec::new()));
        assert_eq!(items[1], MessageDataItem::Rfc822Size(message.len() as u32));
        assert_eq!(
            items[2],
            MessageDataItem::BodyExt {
                section: Some(imap_codec::imap_types::fetch::Section::Text(None)),
                origin: Some(2),
                data: data(b"llo"),
            }
        );
        let MessageDataItem::BodyExt { data: mime, .. } = &items[3] else {
            panic!("no MIME item");
        };
        assert_eq!(mime, &data(b"Subject: s\r\n\r\n"));
    }
}
