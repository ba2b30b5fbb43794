//! Property: SMTP DATA framing, checked with proptest on generated inputs.
//! Dot-stuffing, any chunking and `DataReader` give back the message; a bare
//! CR or LF anywhere gets it refused, never ended early; `command_line` keeps
//! its contract on any bytes.
//!
//! Case counts are kept low so CI stays fast (`PROPTEST_CASES` overrides);
//! the other families are in the other `tests/properties_*.rs`.

mod common;

use common::{dot_stuff, proptest_config};
use proptest::prelude::*;
use sotto::smtp::wire::{DataError, DataReader, LineError, command_line};

/// A line's bytes: anything but CR and LF, with dots and NULs likely.
fn line() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            3 => Just(b'.'),
            1 => Just(0u8),
            8 => any::<u8>().prop_filter("no CR or LF", |b| *b != b'\r' && *b != b'\n'),
        ],
        0..40,
    )
}

/// A message with CRLF line endings only (empty, or ending in CRLF).
fn crlf_message() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(line(), 0..12).prop_map(|lines| {
        let mut m = Vec::new();
        for l in lines {
            m.extend_from_slice(&l);
            m.extend_from_slice(b"\r\n");
        }
        m
    })
}

/// Whether `bytes` hold a CR not followed by LF or an LF not preceded by CR.
fn has_bare_newline(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().any(|(i, &b)| {
        (b == b'\r' && bytes.get(i + 1) != Some(&b'\n'))
            || (b == b'\n' && (i == 0 || bytes[i - 1] != b'\r'))
    })
}

/// Feeds `wire` to a reader in pieces cut at `cuts` (positions taken modulo
/// the length); returns the bytes consumed, whether the end was seen, and
/// the reader.
fn feed_in_pieces(max: usize, wire: &[u8], cuts: &[usize]) -> (usize, bool, DataReader) {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    points.push(wire.len());
    points.sort_unstable();
    points.dedup();
    let mut r = DataReader::new(max);
    let mut at = 0;
    let mut done = false;
    for p in points {
        if done || p < at {
            continue;
        }
        // Pieces start where the reader stopped: what it did not use is
        // offered again, as the session does.
        let (used, end) = r.feed(&wire[at..p]);
        assert!(used <= p - at);
        if !end {
            assert_eq!(used, p - at, "the reader must use all input before the end");
        }
        at += used;
        done = end;
    }
    (at, done, r)
}

proptest! {
    #![proptest_config(proptest_config(64))]

    /// Stuffed, fed in any pieces, with commands after the end: the reader
    /// stops exactly at the end and gives back the message.
    #[test]
    fn data_round_trip(
        message in crlf_message(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut wire = dot_stuff(&message);
        wire.extend_from_slice(b".\r\n");
        let end = wire.len();
        wire.extend_from_slice(b"MAIL FROM:<next@example.com>\r\n");
        let (used, done, r) = feed_in_pieces(1 << 20, &wire, &cuts);
        prop_assert!(done, "no end found");
        prop_assert_eq!(used, end);
        prop_assert_eq!(r.finish(), Ok(message));
    }

    /// One bare CR or LF anywhere: the message is refused, and read to its
    /// real end (no smuggled end, no early stop).
    #[test]
    fn bare_newline_is_refused(
        message in crlf_message(),
        at in any::<usize>(),
        cr in any::<bool>(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut body = dot_stuff(&message);
        let at = at % (body.len() + 1);
        body.insert(at, if cr { b'\r' } else { b'\n' });
        prop_assume!(has_bare_newline(&body));
        let mut wire = body;
        wire.extend_from_slice(b"\r\n.\r\n");
        let end = wire.len();
        wire.extend_from_slice(b"RSET\r\n");
        let (used, done, r) = feed_in_pieces(1 << 20, &wire, &cuts);
        prop_assert!(done, "no end found");
        prop_assert_eq!(used, end, "the message ended early");
        prop_assert_eq!(r.finish(), Err(DataError::BareNewline));
    }

    /// Over the size limit: refused, and still read to the real end.
    #[test]
    fn too_big_is_refused_after_the_end(
        message in crlf_message(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        prop_assume!(!message.is_empty());
        let mut wire = dot_stuff(&message);
        wire.extend_from_slice(b".\r\n");
        let (used, done, r) = feed_in_pieces(message.len() - 1, &wire, &cuts);
        prop_assert!(done);
        prop_assert_eq!(used, wire.len());
        prop_assert_eq!(r.finish(), Err(DataError::TooBig));
    }

    /// command_line never panics and keeps its contract on any bytes.
    #[test]
    fn command_line_contract(
        buf in prop::collection::vec(
            prop_oneof![2 => Just(b'\r'), 2 => Just(b'\n'), 8 => any::<u8>()],
            0..300,
        ),
        max in 1usize..320,
    ) {
        match command_line(&buf, max) {
            Ok(Some(n)) => {
                prop_assert!(n >= 2 && n <= buf.len() && n <= max);
                prop_assert!(buf[..n].ends_with(b"\r\n"));
                prop_assert!(!buf[..n - 2].contains(&b'\r') && !buf[..n - 2].contains(&b'\n'));
            }
            Ok(None) => {
                prop_assert!(buf.len() < max);
                prop_assert!(!buf.contains(&b'\n'));
            }
            Err((LineError::BareNewline, n)) => {
                prop_assert!(n >= 1 && n <= buf.len());
                prop_assert_eq!(buf[n - 1], b'\n');
                prop_assert!(has_bare_newline(&buf[..n]));
            }
            Err((LineError::TooLong, n)) => {
                prop_assert_eq!(n, buf.len());
                prop_assert!(buf.len() >= max);
                prop_assert!(!buf[..max].contains(&b'\n'));
            }
        }
    }
}
