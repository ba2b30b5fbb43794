use std::path::PathBuf;

use super::*;
use crate::config::SubjectMode;

fn set(files: &[(&str, &str)]) -> Result<PolicySet, Vec<String>> {
    let files: Vec<(PathBuf, String)> = files
        .iter()
        .map(|(n, t)| (PathBuf::from(n), t.to_string()))
        .collect();
    PolicySet::from_texts(&files, "test".into())
        .map_err(|ps| ps.iter().map(|p| p.to_string()).collect())
}

fn decide(p: &PolicySet, ch: Channel, from: &str, to: &str) -> Treatment {
    p.decide(ch, from, to, Some(false)).unwrap().treatment
}

#[test]
fn shipped_policies_load() {
    let p = PolicySet::load(None).unwrap();
    assert!(p.rule_count() >= 5);
    let t = decide(&p, Channel::Smtp, "a@x.org", "b@partner.example");
    assert_eq!(t.encrypt, Encrypt::Required);
    let t = decide(&p, Channel::Smtp, "a@x.org", "b@y.org");
    assert_eq!(t.encrypt, Encrypt::IfKey);
}

#[test]
fn first_matching_rule_sets_its_fields_and_defaults_fill_the_rest() {
    let p = set(&[(
        "a.toml",
        r#"
[defaults]
encrypt = "if-key"
links = "strip"

[[rule]]
name = "one"
to = ["*@b.example"]
encrypt = "required"

[[rule]]
name = "two"
to = ["*@b.example", "*@c.example"]
encrypt = "never"
subject = "keep"
"#,
    )])
    .unwrap();
    let d = p
        .decide(Channel::Smtp, "a@a.example", "X@B.example", None)
        .unwrap();
    assert_eq!(d.rule.as_deref(), Some("one"));
    assert_eq!(d.treatment.encrypt, Encrypt::Required);
    // "two" also matches but is not consulted: its subject does not apply.
    assert_eq!(d.treatment.subject, SubjectMode::Protect);
    assert_eq!(d.treatment.links, LinkMode::Strip);
    let origin = |f: Field| {
        d.origins
            .iter()
            .find(|(g, _)| *g == f)
            .unwrap()
            .1
            .to_string()
    };
    assert_eq!(origin(Field::Encrypt), "rule \"one\" at a.toml:6:1");
    assert_eq!(origin(Field::Links), "[defaults] at a.toml:4:1");
    assert_eq!(origin(Field::Sign), "built-in default");
    let t = decide(&p, Channel::Smtp, "a@a.example", "y@c.example");
    assert_eq!((t.encrypt, t.subject), (Encrypt::Never, SubjectMode::Keep));
}

#[test]
fn matchers_channel_from_domain_and_key() {
    let p = set(&[(
        "a.toml",
        r#"
[[rule]]
name = "chat"
channel = "xmpp"
links = "strip"

[[rule]]
name = "legal"
from = "legal.example"
encrypt = "required"

[[rule]]
name = "keyed"
to_has_key = true
sign = true
"#,
    )])
    .unwrap();
    assert_eq!(
        decide(&p, Channel::Xmpp, "a@x", "b@y").links,
        LinkMode::Strip
    );
    assert_eq!(
        decide(&p, Channel::Smtp, "a@x", "b@y").links,
        LinkMode::Keep
    );
    assert_eq!(
        decide(&p, Channel::Smtp, "Boss@Legal.Example", "b@y").encrypt,
        Encrypt::Required
    );
    assert_eq!(
        p.decide(Channel::Smtp, "a@x", "b@y", None).unwrap_err(),
        NeedsKey
    );
    assert_eq!(
        p.decide(Channel::Smtp, "a@x", "b@y", Some(true))
            .unwrap()
            .treatment
            .sign,
        crate::policy::SignMode::Organisation
    );
    assert_eq!(
        p.decide(Channel::Smtp, "a@x", "b@y", Some(false))
            .unwrap()
            .treatment
            .sign,
        crate::policy::SignMode::Off
    );
}

#[test]
fn every_problem_is_reported_with_its_place() {
    let errs = set(&[(
        "p.toml",
        r#"[defaults]
encrypt = "sometimes"
colour = "blue"

[[rule]]
name = "r1"
to = []
links = "maybe"

[[rule]]
to = ["a@b"]

[[rule]]
name = "all"

[[rule]]
name = "after all"
to = "x.example"
encrypt = "required"
missing_key = "plain"
"#,
    )])
    .unwrap_err();
    let want = [
        "p.toml:2:11: bad value for `encrypt`: expected one of \"required\", \"if-key\", \"never\"",
        "p.toml:3:1: unknown field `colour`. Known in [defaults]: encrypt,",
        "p.toml:5:1: rule \"r1\" can never match: `to` is an empty list",
        "p.toml:8:9: bad value for `links`",
        "p.toml:10:1: rule without a `name`",
        "p.toml:16:1: rule \"after all\" can never match: rule \"all\" at p.toml:13:1 matches everything it does first",
        "p.toml:20:1: rule \"after all\": missing_key = \"plain\" contradicts encrypt = \"required\"",
    ];
    assert_eq!(errs.len(), want.len(), "{errs:#?}");
    for (e, w) in errs.iter().zip(want) {
        assert!(e.starts_with(w), "got {e:?}, want {w:?}");
    }
}

#[test]
fn a_typo_names_the_key_it_meant_and_every_known_key() {
    let errs = set(&[(
        "p.toml",
        "[defualts]\nencrpyt = \"never\"\n\n[defaults]\nlnks = \"strip\"\n\n\
         [[rule]]\nname = \"r\"\nfrm = [\"*@a.example\"]\nchanel = \"smtp\"\n",
    )])
    .unwrap_err();
    let fields = "encrypt, missing_key, links, links_when_encrypted, subject, sign, \
                  encrypt_to_sender, archive_key, xmpp_format, store, autocrypt, stale_key";
    assert_eq!(
        errs,
        [
            "p.toml:1:2: unknown field `defualts`, did you mean [defaults]? A policy file holds [defaults] and [[rule]] tables".to_string(),
            format!("p.toml:5:1: unknown field `lnks`, did you mean `links`? Known in [defaults]: {fields}"),
            format!("p.toml:9:1: unknown field `frm`, did you mean `from`? Known in [[rule]]: name, from, to, channel, to_has_key, {fields}"),
            format!("p.toml:10:1: unknown field `chanel`, did you mean `channel`? Known in [[rule]]: name, from, to, channel, to_has_key, {fields}"),
        ]
    );
}

#[test]
fn later_files_may_not_replace_earlier_ones() {
    let errs = set(&[
        ("00.toml", "[defaults]\nencrypt = \"if-key\"\n\n[[rule]]\nname = \"x\"\nto = \"a.example\"\n"),
        ("10.toml", "[defaults]\nencrypt = \"never\"\nsign = true\n\n[[rule]]\nname = \"x\"\nto = \"b.example\"\n"),
    ])
    .unwrap_err();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(
        errs[0],
        "10.toml:2:1: `encrypt` in [defaults] is already set at 00.toml:2:1; a later file may not replace it"
    );
    assert_eq!(
        errs[1],
        "10.toml:5:1: duplicate rule name \"x\"; first defined at 00.toml:4:1"
    );
}

#[test]
fn ten_thousand_rules_decide_by_index() {
    let mut text = String::new();
    for i in 0..10_000 {
        text.push_str(&format!(
            "[[rule]]\nname = \"r{i}\"\nto = \"*@d{i}.example\"\nencrypt = \"required\"\n\n"
        ));
    }
    text.push_str("[[rule]]\nname = \"last\"\nchannel = \"smtp\"\nencrypt = \"never\"\n");
    let p = set(&[("big.toml", &text)]).unwrap();
    let d = p
        .decide(Channel::Smtp, "a@x", "b@d9876.example", None)
        .unwrap();
    assert_eq!(d.rule.as_deref(), Some("r9876"));
    let d = p
        .decide(Channel::Smtp, "a@x", "b@elsewhere.example", None)
        .unwrap();
    assert_eq!(d.rule.as_deref(), Some("last"));
    // Only the indexed rule and the catch-all are candidates.
    assert_eq!(p.index.candidates("x", "d9876.example").len(), 2);
}

#[test]
fn store_takes_true_false_or_encrypted() {
    let p = set(&[(
        "s.toml",
        "[defaults]\nstore = false\n[[rule]]\nname = \"at rest\"\nto = [\"*@example.org\"]\nstore = \"encrypted\"\n",
    )])
    .unwrap();
    let t = decide(&p, Channel::Smtp, "bob@o.example", "alice@example.org");
    assert_eq!(t.store, StoreMode::Encrypted);
    assert!(t.store.archived());
    let t = decide(&p, Channel::Xmpp, "bob@o.example", "carol@o.example");
    assert_eq!(t.store, StoreMode::No);
    assert_eq!(Value::Store(StoreMode::Encrypted).to_string(), "encrypted");
    let bad = set(&[("s.toml", "[defaults]\nstore = \"sometimes\"\n")]).unwrap_err();
    assert!(
        bad.iter()
            .any(|e| e.contains("expected true, false or \"encrypted\"")),
        "{bad:?}"
    );
}
