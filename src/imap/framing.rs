//! IMAP framing that sotto changes on the way: client literals it took
//! itself go on as LITERAL+.

use imap_codec::CommandCodec;
use imap_codec::encode::{Encoder, Fragment};
use imap_codec::fragmentizer::{FragmentInfo, LiteralAnnouncement};
use imap_codec::imap_types::command::Command;
use imap_codec::imap_types::core::LiteralMode;

/// `cmd` encoded with every literal non-synchronizing (`{n+}`): sotto
/// sends a command it rewrote at once, and the server must not answer a
/// continuation the client never asked for.
pub fn encode_non_sync(cmd: &Command<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    for fragment in CommandCodec::default().encode(cmd) {
        match fragment {
            Fragment::Line { data } => out.extend_from_slice(&data),
            Fragment::Literal { data, mode } => {
                if mode == LiteralMode::Sync && out.ends_with(b"}\r\n") {
                    out.truncate(out.len() - 3);
                    out.extend_from_slice(b"+}\r\n");
                }
                out.extend_from_slice(&data);
            }
        }
    }
    out
}

/// `raw` with every synchronizing literal announcement (`{n}`) made
/// non-synchronizing (`{n+}`): sotto already answered the client's
/// continuation, so the server must not wait to send its own.
pub fn non_sync(raw: &[u8], infos: &[FragmentInfo]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 8);
    let mut at = 0;
    for info in infos {
        if let FragmentInfo::Line {
            end,
            announcement:
                Some(LiteralAnnouncement {
                    mode: LiteralMode::Sync,
                    ..
                }),
            ..
        } = *info
        {
            let line = &raw[at..end];
            if let Some(close) = line.iter().rposition(|b| *b == b'}') {
                out.extend_from_slice(&line[..close]);
                out.push(b'+');
                out.extend_from_slice(&line[close..]);
                at = end;
                continue;
            }
        }
        let end = info.range().end;
        out.extend_from_slice(&raw[at..end]);
        at = end;
    }
    out.extend_from_slice(&raw[at..]);
    out
}

#[cfg(test)]
mod tests {
    use imap_codec::fragmentizer::Fragmentizer;

    #[test]
    fn rewritten_commands_carry_non_synchronizing_literals() {
        let cmd = crate::imap::test_command(b"A1 SEARCH CHARSET UTF-8 BODY {4}\r\nb\xc3\xa4r\r\n");
        let out = super::encode_non_sync(&cmd);
        assert_eq!(out, b"A1 SEARCH CHARSET UTF-8 BODY {4+}\r\nb\xc3\xa4r\r\n");
    }

    #[test]
    fn sync_literals_become_literal_plus() {
        let mut f = Fragmentizer::without_max_message_size();
        f.enqueue_bytes(b"A1 LOGIN {5}\r\nalice {6}\r\nsecret\r\n");
        let mut infos = Vec::new();
        while let Some(i) = f.progress() {
            infos.push(i);
            if f.is_message_complete() {
                break;
            }
        }
        assert_eq!(
            super::non_sync(f.message_bytes(), &infos),
            b"A1 LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n"
        );
    }
}
