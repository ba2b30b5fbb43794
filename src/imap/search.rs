//! SEARCH on the text of encrypted mail, answered with the server's help
//! but without a plaintext index anywhere.
//!
//! The server can only search what it holds: for sotto's encrypted copies,
//! ciphertext and the outer fields. So when a client's SEARCH has keys on
//! content (BODY, TEXT, SUBJECT, HEADER, BCC), sotto first reads the
//! mailbox itself (`UID FETCH 1:* (UID BODY.PEEK[])`, each message opened
//! as FETCH would show it, from the cache where it can), finds the UIDs
//! each such key matches, and then sends the client's SEARCH with each of
//! those keys replaced by `UID <the set>` (or `NOT ALL` for none). The
//! server evaluates everything else (flags, dates, sizes, sequence sets,
//! OR/NOT) as always, so the answer has the server's form and semantics.
//! Nothing found is kept: only UIDs, for the one command. Mailboxes over
//! [`MAX_MESSAGES`] are searched by the server alone.

use std::num::NonZeroU32;

use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::fetch::MessageDataItem;
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use mail_parser::{MessageParser, PartType};

use super::framing::encode_non_sync;

/// Mailboxes with more messages are searched by the server alone.
pub const MAX_MESSAGES: usize = 10_000;

/// A client SEARCH sotto is preparing.
#[derive(Debug)]
pub struct SearchJob {
    /// The tag of sotto's own FETCH of the mailbox.
    pub internal_tag: String,
    client: Command<'static>,
    /// The content keys, in the order [`walk`] meets them.
    keys: Vec<SearchKey<'static>>,
    hits: Vec<Vec<NonZeroU32>>,
    seen: usize,
}

/// Whether the server cannot answer `key` on an encrypted copy.
fn is_content(key: &SearchKey<'_>) -> bool {
    matches!(
        key,
        SearchKey::Body(_)
            | SearchKey::Text(_)
            | SearchKey::Subject(_)
            | SearchKey::Header(..)
            | SearchKey::Bcc(_)
    )
}

/// Visits every content key of `key`, depth first, left to right.
fn walk<'k>(key: &'k SearchKey<'static>, out: &mut Vec<&'k SearchKey<'static>>) {
    match key {
        SearchKey::And(all) => all.as_ref().iter().for_each(|k| walk(k, out)),
        SearchKey::Or(a, b) => {
            walk(a, out);
            walk(b, out);
        }
        SearchKey::Not(k) => walk(k, out),
        k if is_content(k) => out.push(k),
        _ => {}
    }
}

/// `key` with its content keys replaced, in [`walk`] order, by `with`.
fn replace(key: &mut SearchKey<'static>, with: &mut impl Iterator<Item = SearchKey<'static>>) {
    match key {
        SearchKey::And(all) => {
            let mut keys: Vec<SearchKey<'static>> = all.as_ref().to_vec();
            keys.iter_mut().for_each(|k| replace(k, with));
            if let Ok(v) = keys.try_into() {
                *all = v;
            }
        }
        SearchKey::Or(a, b) => {
            replace(a, with);
            replace(b, with);
        }
        SearchKey::Not(k) => replace(k, with),
        k if is_content(k) => {
            if let Some(new) = with.next() {
                *k = new;
            }
        }
        _ => {}
    }
}

/// The job for `cmd` and sotto's FETCH to send first, if `cmd` is a
/// SEARCH with content keys; `n` makes the internal tag unique.
pub fn plan(cmd: &Command<'static>, n: u64) -> Option<(SearchJob, Vec<u8>)> {
    let CommandBody::Search { criteria, .. } = &cmd.body else {
        return None;
    };
    let mut found = Vec::new();
    criteria.as_ref().iter().for_each(|k| walk(k, &mut found));
    if found.is_empty() {
        return None;
    }
    let keys: Vec<SearchKey<'static>> = found.into_iter().cloned().collect();
    let internal_tag = format!("sotto-s{n}");
    let fetch = format!("{internal_tag} UID FETCH 1:* (UID BODY.PEEK[])\r\n").into_bytes();
    Some((
        SearchJob {
            internal_tag,
            client: cmd.clone(),
            hits: vec![Vec::new(); keys.len()],
            keys,
            seen: 0,
        },
        fetch,
    ))
}

impl SearchJob {
    /// One message of the mailbox, as the user sees it (`message`), with
    /// the server's items (its UID).
    pub fn add(&mut self, items: &[MessageDataItem<'static>], message: &[u8]) {
        self.seen += 1;
        if self.seen > MAX_MESSAGES {
            return;
        }
        let Some(uid) = items.iter().find_map(|i| match i {
            MessageDataItem::Uid(u) => Some(*u),
            _ => None,
        }) else {
            return;
        };
        let text = Text::of(message);
        for (key, hits) in self.keys.iter().zip(self.hits.iter_mut()) {
            if text.matches(key) {
                hits.push(uid);
            }
        }
    }

    /// The client's SEARCH to send now: content keys replaced by the UIDs
    /// they matched; as the client wrote it if sotto's FETCH failed or the
    /// mailbox was too large (the server's answer alone).
    pub fn finish(self, fetched: bool) -> Vec<u8> {
        if !fetched || self.seen > MAX_MESSAGES {
            return encode_non_sync(&self.client);
        }
        let mut client = self.client;
        let mut with = self.hits.into_iter().map(|uids| match ranges(uids) {
            Some(set) => SearchKey::Uid(set),
            // Nothing matched.
            None => SearchKey::Not(Box::new(SearchKey::All)),
        });
        if let CommandBody::Search { criteria, .. } = &mut client.body {
            let mut keys: Vec<SearchKey<'static>> = criteria.as_ref().to_vec();
            keys.iter_mut().for_each(|k| replace(k, &mut with));
            if let Ok(v) = keys.try_into() {
                *criteria = v;
            }
        }
        encode_non_sync(&client)
    }

    /// Whether the mailbox is past the bound: its messages need not be
    /// opened any more.
    pub fn full(&self) -> bool {
        self.seen >= MAX_MESSAGES
    }
}

/// UIDs as a set of ranges (`3:7,9`), or `None` for none.
fn ranges(mut uids: Vec<NonZeroU32>) -> Option<SequenceSet> {
    uids.sort();
    uids.dedup();
    let mut out: Vec<Sequence> = Vec::new();
    let mut run: Option<(NonZeroU32, NonZeroU32)> = None;
    for u in uids {
        run = match run {
            Some((a, b)) if b.get().checked_add(1) == Some(u.get()) => Some((a, u)),
            Some((a, b)) => {
                out.push(range(a, b));
                Some((u, u))
            }
            None => Some((u, u)),
        };
    }
    if let Some((a, b)) = run {
        out.push(range(a, b));
    }
    SequenceSet::try_from(out).ok()
}

fn range(a: NonZeroU32, b: NonZeroU32) -> Sequence {
    if a == b {
        Sequence::Single(SeqOrUid::Value(a))
    } else {
        Sequence::Range(SeqOrUid::Value(a), SeqOrUid::Value(b))
    }
}

/// A message's searchable text, lower-cased: the header as written, the
/// decoded Subject, and the decoded text of its text parts.
struct Text {
    header: String,
    subject: String,
    body: String,
    fields: Vec<(String, String)>,
}

impl Text {
    fn of(message: &[u8]) -> Text {
        let split = crate::mail::split(message);
        let header = String::from_utf8_lossy(split.header).to_lowercase();
        let fields = split
            .fields
            .iter()
            .map(|f| {
                (
                    f.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(f.value())
                        .replace("\r\n", "")
                        .to_lowercase(),
                )
            })
            .collect();
        let parsed = MessageParser::default().parse(message);
        let subject = parsed
            .as_ref()
            .and_then(|m| m.subject())
            .unwrap_or_default()
            .to_lowercase();
        let mut body = String::new();
        if let Some(m) = &parsed {
            for part in &m.parts {
                match &part.body {
                    PartType::Text(t) | PartType::Html(t) => {
                        body.push_str(&t.to_lowercase());
                        body.push('\n');
                    }
                    _ => {}
                }
            }
        }
        if body.is_empty() {
            body = String::from_utf8_lossy(split.body).to_lowercase();
        }
        Text {
            header,
            subject,
            body,
            fields,
        }
    }

    fn matches(&self, key: &SearchKey<'_>) -> bool {
        let lower = |s: &[u8]| String::from_utf8_lossy(s).to_lowercase();
        match key {
            SearchKey::Body(s) => self.body.contains(&lower(s.as_ref())),
            SearchKey::Text(s) => {
                let s = lower(s.as_ref());
                self.header.contains(&s) || self.subject.contains(&s) || self.body.contains(&s)
            }
            SearchKey::Subject(s) => {
                let s = lower(s.as_ref());
                self.subject.contains(&s) || self.field_contains("subject", &s)
            }
            SearchKey::Header(name, s) => {
                self.field_contains(&lower(name.as_ref()), &lower(s.as_ref()))
            }
            SearchKey::Bcc(s) => self.field_contains("bcc", &lower(s.as_ref())),
            _ => false,
        }
    }

    /// A field named `name` whose value contains `s` (any such field when
    /// `s` is empty, RFC 9051).
    fn field_contains(&self, name: &str, s: &str) -> bool {
        self.fields
            .iter()
            .any(|(n, v)| n == name && (s.is_empty() || v.contains(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::test_command as command;

    #[test]
    fn content_keys_become_uid_sets_and_the_rest_stays() {
        let cmd = command(
            b"A1 UID SEARCH UNSEEN OR BODY \"quarterly\" NOT SUBJECT plans SINCE 1-Dec-2026\r\n",
        );
        let (mut job, fetch) = plan(&cmd, 7).unwrap();
        assert_eq!(fetch, b"sotto-s7 UID FETCH 1:* (UID BODY.PEEK[])\r\n");
        let uid = |n: u32| vec![MessageDataItem::Uid(NonZeroU32::new(n).unwrap())];
        job.add(&uid(3), b"Subject: Plans\r\n\r\nthe Quarterly report\r\n");
        job.add(&uid(5), b"Subject: other\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nquar=\r\nterly\r\n");
        job.add(&uid(9), b"Subject: nothing\r\n\r\nhere\r\n");
        let out = String::from_utf8(job.finish(true)).unwrap();
        assert_eq!(
            out,
            "A1 UID SEARCH UNSEEN OR UID 3,5 NOT UID 3 SINCE \"01-Dec-2026\"\r\n"
        );
    }

    #[test]
    fn nothing_found_matches_nothing_and_a_failed_fetch_leaves_it_to_the_server() {
        let cmd = command(b"A2 SEARCH TEXT zebra\r\n");
        let (job, _) = plan(&cmd, 1).unwrap();
        assert_eq!(
            String::from_utf8(job.finish(true)).unwrap(),
            "A2 SEARCH NOT ALL\r\n"
        );
        let (job, _) = plan(&cmd, 2).unwrap();
        assert_eq!(
            String::from_utf8(job.finish(false)).unwrap(),
            "A2 SEARCH TEXT zebra\r\n"
        );
        assert!(plan(&command(b"A3 SEARCH UNSEEN FROM bob\r\n"), 3).is_none());
        let n = |v: &[u32]| v.iter().map(|u| NonZeroU32::new(*u).unwrap()).collect();
        let set = ranges(n(&[9, 3, 4, 5, 7, 4])).unwrap();
        let cmd = Command {
            tag: imap_codec::imap_types::core::Tag::try_from("x").unwrap(),
            body: CommandBody::Search {
                charset: None,
                criteria: SearchKey::Uid(set).into(),
                uid: true,
            },
        };
        assert_eq!(encode_non_sync(&cmd), b"x UID SEARCH UID 3:5,7,9\r\n");
    }
}
