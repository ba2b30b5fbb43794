//! The documentation agrees with the code: `sotto.example.toml` holds the
//! defaults, the README's configuration table and first screen state them,
//! the README's `[defaults]` block is the shipped policy's, and the README
//! names every peer `tests/run` installs. Each check fails with what to fix.

use std::path::Path;

use sotto::config::{Config, KeySource};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The README's first screen: everything before the first `---` line.
fn first_screen(readme: &str) -> &str {
    readme
        .split("\n---\n")
        .next()
        .expect("README has a first screen")
}

#[test]
fn example_config_is_exactly_the_defaults() {
    let path = root().join("sotto.example.toml");
    let loaded = Config::load(Some(&path), Vec::new())
        .unwrap_or_else(|e| panic!("sotto.example.toml does not load:\n{e}"));
    assert_eq!(
        format!("{loaded:#?}"),
        format!("{:#?}", Config::default()),
        "sotto.example.toml says other defaults than the code (left: the file, right: the code)"
    );
}

/// Backticked words of a Markdown table cell.
fn ticked(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// A TOML value for a documented default: TOML if it parses as such,
/// otherwise the text as a string (`127.0.0.1:10025`, `5m`, `none`).
fn toml_value(text: &str) -> String {
    let as_toml = format!("v = {text}");
    if toml::from_str::<toml::Table>(&as_toml).is_ok() {
        text.to_string()
    } else {
        toml::Value::String(text.to_string()).to_string()
    }
}

#[test]
fn readme_configuration_table_states_the_defaults() {
    let readme = read("README.md");
    let mut doc = toml::Table::new();
    let mut checked = Vec::new();
    for line in readme.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        if cells.len() < 3 || !cells[1].trim_start().starts_with('`') {
            continue;
        }
        let keys = ticked(cells[0]);
        let values = ticked(cells[1]);
        if keys.len() != values.len() || keys.iter().any(|k| !k.contains('.') || k.contains('[')) {
            continue;
        }
        for (key, value) in keys.iter().zip(values) {
            // `smtp.listen` or `smtp.auth.required`: tables down to the leaf.
            let mut path: Vec<&str> = key.split('.').collect();
            let leaf = path.pop().expect("a leaf");
            let mut table = &mut doc;
            for name in path {
                table = table
                    .entry(name)
                    .or_insert_with(|| toml::Value::Table(Default::default()))
                    .as_table_mut()
                    .expect("a table");
            }
            let v: toml::Table =
                toml::from_str(&format!("v = {}", toml_value(value))).expect("value parses");
            table.insert(leaf.to_string(), v["v"].clone());
            checked.push(key.to_string());
        }
    }
    assert!(
        checked.len() >= 35,
        "only {} documented defaults found in README's configuration table: {checked:?}",
        checked.len()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("readme.toml");
    std::fs::write(&file, doc.to_string()).expect("write");
    let loaded = Config::load(Some(&file), Vec::new()).unwrap_or_else(|e| {
        panic!("README's documented defaults are not a valid configuration:\n{e}")
    });
    assert_eq!(
        format!("{loaded:#?}"),
        format!("{:#?}", Config::default()),
        "README's configuration table states other defaults than the code \
         (left: the README's {} values, right: the code)",
        checked.len()
    );
}

#[test]
fn readme_first_screen_states_listeners_links_and_lookups() {
    let readme = read("README.md");
    let screen = first_screen(&readme);
    let cfg = Config::default();
    for (what, addr) in [
        ("smtp.listen", &cfg.smtp.listen),
        ("lmtp.listen", &cfg.lmtp.listen),
        ("redirect.listen", &cfg.redirect.listen),
        ("admin.listen", &cfg.admin.listen),
        ("upstream.address", &cfg.upstream.address),
    ] {
        assert!(
            screen.contains(&format!("`{addr}`")),
            "README's first screen does not name {what}'s default `{addr}`"
        );
    }
    assert!(cfg.xmpp.listen.is_empty() && screen.contains("No XMPP listener"));
    // What the shipped policy does to links in readable mail.
    let shipped: toml::Table = toml::from_str(&read("policies/00-defaults.toml")).expect("toml");
    let links = shipped["defaults"]["links"].as_str().expect("links");
    assert!(
        screen.contains(&format!("(`{links}`)")),
        "README's first screen does not say the shipped links mode `{links}`"
    );
    // What it looks up.
    let vks = cfg.keys.sources.contains(&KeySource::Vks);
    assert_eq!(
        screen.contains("No public\n  keyserver is asked")
            || screen.contains("No public keyserver is asked"),
        !vks,
        "README's first screen and keys.sources' default disagree about VKS"
    );
    assert!(cfg.keys.sources.contains(&KeySource::Wkd) && screen.contains("(WKD)"));
}

#[test]
fn readme_policy_defaults_are_the_shipped_ones() {
    let readme = read("README.md");
    let start = readme
        .find("The shipped `[defaults]`")
        .expect("README introduces the shipped [defaults]");
    let block = readme[start..]
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("a toml block");
    let documented: toml::Table = toml::from_str(block).expect("README's block is TOML");
    let shipped: toml::Table = toml::from_str(&read("policies/00-defaults.toml")).expect("toml");
    assert_eq!(
        documented["defaults"], shipped["defaults"],
        "README's [defaults] block and policies/00-defaults.toml differ"
    );
}

#[test]
fn readme_names_every_peer_tests_run_installs() {
    let script = read("tests/run");
    let readme = read("README.md");
    let mut peers = Vec::new();
    for line in script.lines() {
        for marker in ["missing+=(", "pips+=("] {
            let mut rest = line;
            while let Some(i) = rest.find(marker) {
                let after = &rest[i + marker.len()..];
                let end = after.find(')').expect("closing paren");
                peers.extend(after[..end].split_whitespace().map(str::to_string));
                rest = &after[end..];
            }
        }
    }
    assert!(peers.len() >= 10, "tests/run parsed wrong: {peers:?}");
    let missing: Vec<&String> = peers
        .iter()
        .filter(|p| !readme.contains(&format!("`{p}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "tests/run installs {missing:?}, which README's test section does not name"
    );
}
