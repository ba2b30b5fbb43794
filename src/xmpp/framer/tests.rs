use super::*;
use crate::xmpp::element::is_xml_char;

const HEADER: &str = "<?xml version='1.0'?>\n<stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='example.com' \
    version='1.0' xml:lang='en' id='a&amp;b'>";

fn stream() -> String {
    let mut s = String::from(HEADER);
    s.push_str(
        "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
         <mechanism>PLAIN</mechanism></mechanisms></stream:features>\n  ",
    );
    s.push_str(
        "<message to='bob@example.com' type='chat' xml:lang='de'>\
         <body>a &lt; b &amp;&amp; c &gt; d &#x1F600; &#233; <![CDATA[<not markup>]]></body>\
         <x:y xmlns:x='urn:x' x:attr='v'/><html xmlns='http://jabber.org/protocol/xhtml-im'>\
         <body xmlns='http://www.w3.org/1999/xhtml'><p>hi</p></body></html></message>",
    );
    s.push_str(" \t\r\n ");
    s.push_str("<iq type=\"get\" id='1'><ping xmlns='urn:xmpp:ping'/></iq>");
    s.push_str("<presence/> ");
    s.push_str("</stream:stream>");
    s
}

/// Feeds `chunks` one after another, pulling frames after each.
fn frames_of(chunks: &[&[u8]], finish: bool) -> Result<Vec<Frame>, FrameError> {
    let mut framer = Framer::default();
    let mut out = Vec::new();
    for chunk in chunks {
        framer.feed(chunk);
        while let Some(frame) = framer.next_frame()? {
            out.push(frame);
        }
    }
    if finish {
        framer.finish();
        while let Some(frame) = framer.next_frame()? {
            out.push(frame);
        }
    }
    Ok(out)
}

/// Merges adjacent whitespace frames, whose split depends on arrival.
fn normalized(frames: Vec<Frame>) -> Vec<Frame> {
    let mut out: Vec<Frame> = Vec::new();
    for frame in frames {
        if let (Some(Frame::Whitespace(prev)), Frame::Whitespace(ws)) = (out.last_mut(), &frame) {
            prev.extend_from_slice(ws);
            continue;
        }
        out.push(frame);
    }
    out
}

fn concat(frames: &[Frame]) -> Vec<u8> {
    frames.iter().flat_map(|f| f.raw().to_vec()).collect()
}

#[test]
fn frames_a_stream() {
    let input = stream();
    let frames = frames_of(&[input.as_bytes()], true).unwrap();
    let Frame::StreamHeader(h) = &frames[0] else {
        panic!("{:?}", frames[0]);
    };
    assert_eq!(h.name, "stream:stream");
    assert_eq!(h.to(), Some("example.com"));
    assert_eq!(h.id(), Some("a&b"));
    assert_eq!(h.lang(), Some("en"));
    assert_eq!(h.version(), Some("1.0"));
    assert_eq!(h.attr("xmlns"), Some("jabber:client"));
    assert_eq!(h.ns_context(), NsContext::c2s());
    assert!(h.raw.starts_with(b"<?xml version='1.0'?>\n<stream:stream "));
    let stanzas: Vec<(&str, &str)> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Stanza(s) => Some((s.name.as_str(), s.ns.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        stanzas,
        [
            ("stream:features", STREAM_NS),
            ("message", CLIENT_NS),
            ("iq", CLIENT_NS),
            ("presence", CLIENT_NS),
        ]
    );
    let Frame::Stanza(features) = &frames[1] else {
        panic!()
    };
    assert!(features.is("features", STREAM_NS));
    assert_eq!(
        frames.last(),
        Some(&Frame::StreamEnd(b"</stream:stream>".to_vec()))
    );
    assert!(
        frames
            .iter()
            .any(|f| f == &Frame::Whitespace(b" \t\r\n ".to_vec()))
    );
    assert_eq!(concat(&frames), input.as_bytes());
}

#[test]
fn chunk_split_invariance() {
    let input = stream();
    let input = input.as_bytes();
    let whole = normalized(frames_of(&[input], true).unwrap());
    for split in 0..=input.len() {
        let (a, b) = input.split_at(split);
        let frames = frames_of(&[a, b], true).unwrap();
        assert_eq!(concat(&frames), input, "split at {split}");
        assert_eq!(normalized(frames), whole, "split at {split}");
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    let frames = frames_of(&bytes, true).unwrap();
    assert_eq!(concat(&frames), input);
    assert_eq!(normalized(frames), whole);
}

#[test]
fn errors_do_not_depend_on_chunking() {
    for (bad, kind) in [
        ("<!DOCTYPE x>", "doctype"),
        ("<a><!ENTITY x 'y'>", "markup_declaration"),
        ("<a><!-- x --></a>", "comment"),
        ("<?php x?>", "processing_instruction"),
        ("<a>&xxe;</a>", "entity_reference"),
        ("<a></b>", "not_well_formed"),
        ("<a>\u{0}</a>", "not_well_formed"),
        ("<a><![CDATA[x]]></a><b>", "unexpected_eof"),
    ] {
        let bad = format!("<stream:stream xmlns:stream='{STREAM_NS}'>{bad}");
        let whole = frames_of(&[bad.as_bytes()], true).unwrap_err();
        assert_eq!(whole.kind(), kind, "{bad}");
        let bytes: Vec<&[u8]> = bad.as_bytes().chunks(1).collect();
        assert_eq!(frames_of(&bytes, true).unwrap_err(), whole, "{bad}");
    }
}

#[test]
fn keepalive_comes_out_at_once() {
    let mut framer = Framer::default();
    framer.feed(HEADER.as_bytes());
    assert!(matches!(
        framer.next_frame(),
        Ok(Some(Frame::StreamHeader(_)))
    ));
    framer.feed(b" ");
    assert_eq!(
        framer.next_frame(),
        Ok(Some(Frame::Whitespace(b" ".to_vec())))
    );
    assert_eq!(framer.next_frame(), Ok(None));
}

#[test]
fn restart_after_sasl_success() {
    let sasl = "urn:ietf:params:xml:ns:xmpp-sasl";
    let input =
        format!("{HEADER}<success xmlns='{sasl}'/>{HEADER}<iq type='set' id='b'/></stream:stream>");
    let mut framer = Framer::default();
    framer.feed(input.as_bytes());
    let mut frames = Vec::new();
    while let Some(frame) = framer.next_frame().unwrap() {
        if let Frame::Stanza(s) = &frame
            && s.is("success", sasl)
        {
            framer.reset();
        }
        frames.push(frame);
    }
    let kinds: Vec<&str> = frames
        .iter()
        .map(|f| match f {
            Frame::StreamHeader(_) => "header",
            Frame::Stanza(s) => s.local_name(),
            Frame::Whitespace(_) => "ws",
            Frame::StreamEnd(_) => "end",
        })
        .collect();
    assert_eq!(kinds, ["header", "success", "header", "iq", "end"]);
    assert_eq!(concat(&frames), input.as_bytes());
    // Without the reset, the second XML declaration is a PI.
    assert_eq!(
        frames_of(&[input.as_bytes()], false).unwrap_err(),
        FrameError::ProcessingInstruction
    );
}

#[test]
fn end_of_input() {
    assert_eq!(frames_of(&[], true), Ok(vec![]));
    let closed = format!("{HEADER}</stream:stream>\n");
    assert_eq!(frames_of(&[closed.as_bytes()], true).unwrap().len(), 2);
    let open = format!("{HEADER}<message><body>hi");
    assert_eq!(
        frames_of(&[open.as_bytes()], true),
        Err(FrameError::UnexpectedEof)
    );
    assert_eq!(frames_of(&[open.as_bytes()], false).unwrap().len(), 1);
    let after = format!("{HEADER}</stream:stream><message/>");
    assert_eq!(
        frames_of(&[after.as_bytes()], false)
            .unwrap_err()
            .stream_error_condition(),
        "not-well-formed"
    );
}

#[test]
fn errors_are_final() {
    let mut framer = Framer::default();
    framer.feed(HEADER.as_bytes());
    framer.feed(b"<a><!-- x -->");
    assert!(framer.next_frame().unwrap().is_some());
    assert_eq!(framer.next_frame(), Err(FrameError::Comment));
    framer.feed(b"</a>");
    assert_eq!(framer.next_frame(), Err(FrameError::Comment));
    framer.reset();
    assert_eq!(framer.next_frame(), Err(FrameError::Comment));
}

#[test]
fn stream_header_checks() {
    let wrong_ns = "<stream:stream xmlns:stream='urn:nope'>";
    assert_eq!(
        frames_of(&[wrong_ns.as_bytes()], false),
        Err(FrameError::InvalidNamespace)
    );
    let html = "<html xmlns='http://etherx.jabber.org/streams'>";
    assert_eq!(
        frames_of(&[html.as_bytes()], false).unwrap_err().kind(),
        "bad_format"
    );
    let text = format!("{HEADER} hello <a/>");
    assert_eq!(
        frames_of(&[text.as_bytes()], false),
        Err(FrameError::BadFormat("text between stanzas"))
    );
}

#[test]
fn limits() {
    let limits = Limits {
        max_stanza_bytes: 100,
        max_depth: 3,
        max_attributes: 2,
    };
    let run = |s: &str| {
        let mut framer = Framer::new(limits);
        framer.feed(s.as_bytes());
        let mut n = 0;
        loop {
            match framer.next_frame() {
                Ok(Some(_)) => n += 1,
                Ok(None) => return Ok(n),
                Err(e) => return Err(e),
            }
        }
    };
    let h = "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client'>";
    assert_eq!(run(&format!("{h}<a><b><c/></b></a>")), Ok(2));
    assert_eq!(
        run(&format!("{h}<a><b><c><d/></c></b></a>")),
        Err(FrameError::TooDeep { limit: 3 })
    );
    assert_eq!(run(&format!("{h}<a x='1' y='2'/>")), Ok(2));
    // Namespace declarations count.
    assert_eq!(
        run(&format!("{h}<a x='1' xmlns:p='urn:p'  y='2'/>")),
        Err(FrameError::TooManyAttributes { limit: 2 })
    );
    let exactly = format!("<a>{}</a>", "x".repeat(100 - 7));
    assert_eq!(exactly.len(), 100);
    assert_eq!(run(&format!("{h}{exactly}")), Ok(2));
    let over = format!("<a>{}</a>", "x".repeat(100 - 6));
    assert_eq!(
        run(&format!("{h}{over}")),
        Err(FrameError::TooLarge { limit: 100 })
    );
    let endless = format!("{h}<a>{}", "x".repeat(10_000));
    let mut framer = Framer::new(limits);
    framer.feed(endless.as_bytes());
    assert!(framer.next_frame().unwrap().is_some());
    assert_eq!(
        framer.next_frame(),
        Err(FrameError::TooLarge { limit: 100 })
    );
    let unlimited = Limits {
        max_stanza_bytes: usize::MAX,
        max_depth: usize::MAX,
        max_attributes: usize::MAX,
    };
    let mut framer = Framer::new(unlimited);
    framer.feed(stream().as_bytes());
    let mut n = 0;
    while framer.next_frame().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 9);
    let long_value = format!(
        "<stream:stream xmlns:stream='{STREAM_NS}'><a v='{}'/>",
        "v".repeat(TOKEN_LIMIT + 1)
    );
    assert_eq!(
        frames_of(&[long_value.as_bytes()], false),
        Err(FrameError::TokenTooLong { limit: TOKEN_LIMIT })
    );
}

#[test]
fn error_conditions_and_stream_error() {
    assert_eq!(
        FrameError::TooLarge { limit: 1 }.stream_error_condition(),
        "policy-violation"
    );
    assert_eq!(
        FrameError::Doctype.stream_error_condition(),
        "restricted-xml"
    );
    assert_eq!(
        FrameError::InvalidUtf8.stream_error_condition(),
        "not-well-formed"
    );
    assert_eq!(
        stream_error("policy-violation"),
        b"<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
          </stream:error></stream:stream>"
    );
    assert_eq!(
        stream_error("x'/><evil"),
        stream_error("undefined-condition")
    );
}

#[test]
fn namespaces() {
    let input = stream();
    let frames = frames_of(&[input.as_bytes()], true).unwrap();
    let Frame::Stanza(msg) = &frames[3] else {
        panic!("{:?}", frames[3]);
    };
    let el = parse_stanza(&msg.raw).unwrap();
    assert_eq!((el.name.as_str(), el.ns.as_str()), ("message", CLIENT_NS));
    assert_eq!(el.attr("to"), Some("bob@example.com"));
    assert_eq!(el.attr("xml:lang"), Some("de"));
    let body = el.child("body", CLIENT_NS).unwrap();
    assert_eq!(body.text(), "a < b && c > d \u{1F600} \u{e9} <not markup>");
    let y = el.child("y", "urn:x").unwrap();
    assert_eq!(y.attr("{urn:x}attr"), Some("v"));
    let html = el
        .child("html", "http://jabber.org/protocol/xhtml-im")
        .unwrap();
    assert!(html.child("body", "http://www.w3.org/1999/xhtml").is_some());

    let Frame::Stanza(features) = &frames[1] else {
        panic!()
    };
    let f = parse_stanza(&features.raw).unwrap();
    assert_eq!((f.name.as_str(), f.ns.as_str()), ("features", STREAM_NS));
    // Without the header's bindings, the prefix is undeclared.
    assert!(parse_stanza_in(&features.raw, &NsContext::default(), &Limits::default()).is_err());

    // Serializing gives a namespace-equivalent stanza.
    let out = serialize(&el);
    assert!(out.starts_with(b"<message xmlns='jabber:client' "));
    assert_eq!(
        parse_stanza_in(&out, &NsContext::default(), &Limits::default()),
        Ok(el.clone())
    );
    assert_eq!(parse_stanza(&out), Ok(el));
    let f_out = serialize(&f);
    assert_eq!(parse_stanza(&f_out), Ok(f));
}

#[test]
fn parse_stanza_limits_and_shape() {
    assert_eq!(
        parse_stanza(b"<a/><b/>"),
        Err(FrameError::BadFormat("more than one element"))
    );
    assert_eq!(parse_stanza(b" <a/>\n").map(|e| e.name), Ok("a".into()));
    assert_eq!(parse_stanza(b"hi <a/>").unwrap_err().kind(), "bad_format");
    assert_eq!(parse_stanza(b"<a>").unwrap_err().kind(), "not_well_formed");
    assert_eq!(parse_stanza(b"").unwrap_err().kind(), "bad_format");
    assert_eq!(parse_stanza(b"<a><!-- c --></a>"), Err(FrameError::Comment));
    assert_eq!(parse_stanza(b"<!DOCTYPE a><a/>"), Err(FrameError::Doctype));
    assert_eq!(
        parse_stanza(b"<a>&ent;</a>"),
        Err(FrameError::EntityReference)
    );
    let deep = format!("{}{}", "<a>".repeat(10_000), "</a>".repeat(10_000));
    let huge = Limits {
        max_stanza_bytes: usize::MAX,
        max_depth: usize::MAX,
        max_attributes: usize::MAX,
    };
    assert_eq!(
        parse_stanza_in(deep.as_bytes(), &NsContext::c2s(), &huge),
        Err(FrameError::TooDeep {
            limit: MAX_TREE_DEPTH
        })
    );
    assert_eq!(
        parse_stanza(deep.as_bytes()),
        Err(FrameError::TooDeep { limit: 64 })
    );
    let attrs: String = (0..65).map(|i| format!(" a{i}='x'")).collect();
    assert_eq!(
        parse_stanza(format!("<a{attrs}/>").as_bytes()),
        Err(FrameError::TooManyAttributes { limit: 64 })
    );
}

#[test]
fn escaping_round_trip() {
    let nasty = "<tag attr=\"x\" other='y'> & &amp; ]]> \r\n\t \u{e9}\u{1F600} end";
    let mut el = Element::new("message", CLIENT_NS);
    el.set_attr("to", nasty);
    el.set_attr("xml:lang", "en");
    el.set_attr("{urn:a}b", nasty);
    el.set_attr("{urn:c}d", "2");
    el.set_attr("xmlns:evil", "ignored");
    let mut body = Element::new("body", CLIENT_NS);
    body.children.push(Node::Text(nasty.to_owned()));
    el.children.push(Node::Element(body));
    let mut x = Element::new("x", "");
    x.children.push(Node::Text("no namespace".into()));
    el.children.push(Node::Element(x));
    let out = serialize(&el);
    let back = parse_stanza(&out).unwrap();
    el.remove_attr("xmlns:evil");
    assert_eq!(back.child("body", CLIENT_NS).unwrap().text(), nasty);
    assert_eq!(back.child("x", "").unwrap().text(), "no namespace");
    let mut sorted = el.attrs.clone();
    sorted.sort();
    let mut back_sorted = back.attrs.clone();
    back_sorted.sort();
    assert_eq!(back_sorted, sorted);
    assert_eq!(back.children, el.children);

    // Characters XML cannot carry are replaced, never emitted.
    let mut bad = Element::new("a", "");
    bad.set_attr("v", "x\u{0}y");
    bad.children.push(Node::Text("\u{1b}\u{FFFE}".into()));
    let back = parse_stanza(&serialize(&bad)).unwrap();
    assert_eq!(back.attr("v"), Some("x\u{FFFD}y"));
    assert_eq!(back.text(), "\u{FFFD}\u{FFFD}");
}

#[test]
fn unescapes_header_attributes() {
    assert_eq!(
        unescape_attr(b"a&lt;&gt;&amp;&apos;&quot;&#65;&#x42;\t\r\n\n&x"),
        "a<>&'\"AB   &x"
    );
    let mut seen = Vec::new();
    let name = scan_start_tag(b"\n <p:q  a = \"1'\"  b='2\"' />", |k, v| {
        seen.push((lossy(k), lossy(v)))
    });
    assert_eq!(name, b"p:q");
    assert_eq!(
        seen,
        [("a".into(), "1'".into()), ("b".into(), "2\"".into())]
    );
    assert_eq!(scan_start_tag(b"garbage", |_, _| {}), b"");
}

proptest::proptest! {
    #[test]
    fn text_and_attributes_round_trip(text in "\\PC*", value in "\\PC*") {
        let mut el = Element::new("a", "urn:t");
        el.set_attr("v", value.clone());
        el.children.push(Node::Text(text.clone()));
        let back = parse_stanza(&serialize(&el)).unwrap();
        let keep = |s: &str| -> String {
            s.chars().map(|c| if is_xml_char(c) { c } else { '\u{FFFD}' }).collect()
        };
        proptest::prop_assert_eq!(back.attr("v").map(str::to_owned), Some(keep(&value)));
        proptest::prop_assert_eq!(back.text(), keep(&text));
    }
}
