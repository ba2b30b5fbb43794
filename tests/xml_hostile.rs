//! Hostile XMPP stream inputs against the stanza framer: the corpus in
//! tests/data/hostile/xml/ (outcomes in its MANIFEST.toml) and big inputs
//! generated here. Every case must end in its expected error (never a panic,
//! never a hang) with bounded memory, whatever the chunking.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sotto::xmpp::framer::{
    Frame, FrameError, Framer, Limits, NsContext, parse_stanza_in, stream_error,
};

const HEADER: &[u8] = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>";
const MAX: usize = 256 * 1024;
const CHUNK: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    xml: BTreeMap<String, Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    #[allow(dead_code)]
    what: String,
    error: String,
    condition: Option<String>,
    frames: Option<usize>,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hostile/xml")
}

fn manifest() -> Manifest {
    let text = std::fs::read_to_string(corpus_dir().join("MANIFEST.toml")).unwrap();
    toml::from_str(&text).unwrap()
}

/// What happened to a whole input: the frames, or the error that ended it.
#[derive(Debug)]
struct Outcome {
    frames: Vec<Frame>,
    error: Option<FrameError>,
}

/// Feeds `input` in `chunk`-byte pieces, pulling frames after each, then
/// finishes. Checks on the way that the framer never holds more than one
/// stanza's worth once it has asked for more bytes, and that an error is
/// returned again on the next call.
fn run(input: &[u8], chunk: usize) -> Outcome {
    let mut framer = Framer::default();
    let mut frames = Vec::new();
    let pieces = input.chunks(chunk.max(1)).map(Some).chain([None]);
    for piece in pieces {
        match piece {
            Some(bytes) => framer.feed(bytes),
            None => framer.finish(),
        }
        loop {
            match framer.next_frame() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(framer.next_frame(), Err(e.clone()), "error is final");
                    return Outcome {
                        frames,
                        error: Some(e),
                    };
                }
            }
        }
        assert!(
            framer.buffered_len() <= MAX + 1,
            "{}",
            framer.buffered_len()
        );
    }
    Outcome {
        frames,
        error: None,
    }
}

fn non_whitespace(frames: &[Frame]) -> usize {
    frames
        .iter()
        .filter(|f| !matches!(f, Frame::Whitespace(_)))
        .count()
}

#[test]
fn corpus_and_manifest_match() {
    let manifest = manifest();
    let mut files: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "MANIFEST.toml")
        .collect();
    files.sort();
    let listed: Vec<String> = manifest.xml.keys().cloned().collect();
    assert_eq!(files, listed, "every file has a case and every case a file");
}

#[test]
fn corpus() {
    let mut failures = Vec::new();
    for (name, case) in manifest().xml {
        let input = std::fs::read(corpus_dir().join(&name)).unwrap();
        let whole = run(&input, input.len());
        let got = whole.error.as_ref().map_or("none", FrameError::kind);
        if got != case.error {
            failures.push(format!(
                "{name}: expected {}, got {got} ({:?})",
                case.error, whole.error
            ));
            continue;
        }
        match &whole.error {
            Some(e) => {
                let condition = e.stream_error_condition();
                if case.condition.as_deref() != Some(condition) {
                    failures.push(format!(
                        "{name}: expected condition {:?}, got {condition}",
                        case.condition
                    ));
                }
                let reply = String::from_utf8(stream_error(condition)).unwrap();
                assert!(reply.contains(&format!("<{condition} xmlns=")), "{reply}");
            }
            None => {
                assert_eq!(
                    whole
                        .frames
                        .iter()
                        .flat_map(|f| f.raw().to_vec())
                        .collect::<Vec<u8>>(),
                    input,
                    "{name}: raw bytes of the frames are the input"
                );
                if case.frames != Some(non_whitespace(&whole.frames)) {
                    failures.push(format!(
                        "{name}: expected {:?} frames, got {}",
                        case.frames,
                        non_whitespace(&whole.frames)
                    ));
                }
            }
        }
        for chunk in [1, 7, 4096] {
            let split = run(&input, chunk);
            if split.error != whole.error
                || non_whitespace(&split.frames) != non_whitespace(&whole.frames)
            {
                failures.push(format!(
                    "{name}: in {chunk}-byte chunks got {:?} after {} frames, whole gave {:?}",
                    split.error,
                    split.frames.len(),
                    whole.error
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Pulls frames until the framer needs more bytes. Whitespace frames are kept
/// empty (there can be 10 MB of them), after checking their size.
fn pull(framer: &mut Framer, frames: &mut Vec<Frame>) -> Result<(), FrameError> {
    while let Some(frame) = framer.next_frame()? {
        match frame {
            Frame::Whitespace(ws) => {
                assert!(ws.len() <= CHUNK, "{}", ws.len());
                frames.push(Frame::Whitespace(Vec::new()));
            }
            frame => frames.push(frame),
        }
    }
    assert!(
        framer.buffered_len() <= MAX + 1,
        "holds {} bytes",
        framer.buffered_len()
    );
    Ok(())
}

/// Feeds the header, `prefix`, `total` bytes of `fill` in 64 KiB chunks made
/// on the fly (the 10 MB is never in memory at once) and `suffix`, then
/// finishes. Returns the outcome and how many bytes had been fed when it came.
fn run_generated(prefix: &[u8], fill: u8, total: usize, suffix: &[u8]) -> (Outcome, usize) {
    let fills = (0..total.div_ceil(CHUNK)).map(|i| vec![fill; CHUNK.min(total - i * CHUNK)]);
    let chunks = [HEADER.to_vec(), prefix.to_vec()]
        .into_iter()
        .chain(fills)
        .chain([suffix.to_vec()]);
    let mut framer = Framer::default();
    let mut frames = Vec::new();
    let mut fed = 0usize;
    for chunk in chunks {
        fed += chunk.len();
        framer.feed(&chunk);
        if let Err(e) = pull(&mut framer, &mut frames) {
            return (
                Outcome {
                    frames,
                    error: Some(e),
                },
                fed,
            );
        }
    }
    framer.finish();
    let error = pull(&mut framer, &mut frames).err();
    (Outcome { frames, error }, fed)
}

const TEN_MB: usize = 10 * 1024 * 1024;

#[test]
fn ten_mb_stanza_is_refused_at_the_limit() {
    let (outcome, fed) = run_generated(b"<message to='a@example.com'><body>", b'A', TEN_MB, b"");
    assert_eq!(outcome.error, Some(FrameError::TooLarge { limit: MAX }));
    assert_eq!(
        outcome.error.unwrap().stream_error_condition(),
        "policy-violation"
    );
    // The error comes within one chunk of the limit, not after 10 MB.
    assert!(fed <= HEADER.len() + 64 + MAX + CHUNK, "fed {fed}");
}

#[test]
fn ten_mb_header_is_refused_at_the_limit() {
    let mut framer = Framer::default();
    framer.feed(b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'");
    let attr = b" a='x'".repeat(CHUNK / 6);
    let mut fed = 0;
    let error = loop {
        framer.feed(&attr);
        fed += attr.len();
        assert!(fed < TEN_MB, "no error after 10 MB");
        match framer.next_frame() {
            Ok(None) => assert!(framer.buffered_len() <= MAX + 1),
            Ok(Some(frame)) => panic!("{frame:?}"),
            Err(e) => break e,
        }
    };
    assert_eq!(error, FrameError::TooLarge { limit: MAX });
    assert!(fed <= MAX + CHUNK, "fed {fed}");
}

#[test]
fn ten_mb_attribute_value_and_name_are_refused_early() {
    let (outcome, fed) = run_generated(b"<message to='", b'a', TEN_MB, b"'/>");
    assert_eq!(
        outcome.error.as_ref().map(FrameError::kind),
        Some("token_too_long")
    );
    assert!(fed <= HEADER.len() + 64 + CHUNK, "fed {fed}");
    let (outcome, fed) = run_generated(b"<m", b'a', TEN_MB, b"/>");
    assert_eq!(
        outcome.error.as_ref().map(FrameError::kind),
        Some("token_too_long")
    );
    assert!(fed <= HEADER.len() + 64 + CHUNK, "fed {fed}");
}

#[test]
fn ten_mb_of_text_between_stanzas_is_refused_early() {
    let (outcome, fed) = run_generated(b"<presence/>", b'x', TEN_MB, b"");
    assert_eq!(
        outcome.error,
        Some(FrameError::BadFormat("text between stanzas"))
    );
    assert!(fed <= HEADER.len() + 64 + CHUNK, "fed {fed}");
}

#[test]
fn ten_mb_comment_is_refused_at_its_start() {
    let (outcome, fed) = run_generated(b"<!--", b'x', TEN_MB, b"-->");
    assert_eq!(outcome.error, Some(FrameError::Comment));
    assert!(fed <= HEADER.len() + 64, "fed {fed}");
}

#[test]
fn ten_mb_of_keepalives_pass_with_bounded_memory() {
    let (outcome, fed) =
        run_generated(b"<presence/>", b' ', TEN_MB, b"<presence/></stream:stream>");
    assert_eq!(outcome.error, None);
    assert_eq!(fed, HEADER.len() + 11 + TEN_MB + 27);
    let stanzas = non_whitespace(&outcome.frames);
    assert_eq!(stanzas, 4, "header, 2 presences, end");
    assert!(outcome.frames.len() > 4);
}

#[test]
fn ten_thousand_deep_nesting_is_refused() {
    let mut input = HEADER.to_vec();
    input.extend_from_slice(b"<message>");
    input.extend_from_slice(&b"<a>".repeat(10_000));
    input.extend_from_slice(&b"</a>".repeat(10_000));
    input.extend_from_slice(b"</message></stream:stream>");
    for chunk in [input.len(), 4096, 3] {
        let outcome = run(&input, chunk);
        assert_eq!(outcome.error, Some(FrameError::TooDeep { limit: 64 }));
        assert_eq!(outcome.frames.len(), 1, "only the header");
    }

    // A framer allowed to go that deep frames it without recursing, and
    // building a tree of it stops at the hard ceiling, not the stack's end.
    let limits = Limits {
        max_depth: 20_000,
        ..Limits::default()
    };
    let mut framer = Framer::new(limits);
    framer.feed(&input);
    assert!(matches!(
        framer.next_frame(),
        Ok(Some(Frame::StreamHeader(_)))
    ));
    let Ok(Some(Frame::Stanza(stanza))) = framer.next_frame() else {
        panic!("no stanza");
    };
    assert_eq!(stanza.name, "message");
    assert!(matches!(
        parse_stanza_in(&stanza.raw, &NsContext::c2s(), &limits),
        Err(FrameError::TooDeep { limit: 1024 })
    ));
}

#[test]
fn twenty_thousand_stanzas_frame_one_for_one() {
    let mut input = HEADER.to_vec();
    for i in 0..20_000 {
        input.extend_from_slice(format!("<presence id='p{i}'/>\n").as_bytes());
    }
    input.extend_from_slice(b"</stream:stream>");
    let outcome = run(&input, 1500);
    assert_eq!(outcome.error, None);
    let ids: Vec<String> = outcome
        .frames
        .iter()
        .filter_map(|f| match f {
            Frame::Stanza(s) => Some(String::from_utf8_lossy(&s.raw).into_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 20_000);
    assert_eq!(ids[12_345], "<presence id='p12345'/>");
    let raw: Vec<u8> = outcome
        .frames
        .iter()
        .flat_map(|f| f.raw().to_vec())
        .collect();
    assert_eq!(raw, input);
}
