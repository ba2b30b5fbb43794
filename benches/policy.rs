//! Policy matching cost as rules grow: decisions per second with 10, 1,000
//! and 10,000 rules (one per domain, plus a catch-all at the end), side by
//! side, so the ratio to the 10-rule baseline shows whether the cost stays
//! flat. Run with `cargo bench --bench policy`.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use sotto::policy::{Channel, PolicySet};

fn set(rules: usize) -> PolicySet {
    let mut text = String::from("[defaults]\nencrypt = \"if-key\"\n\n");
    for i in 0..rules {
        text.push_str(&format!(
            "[[rule]]\nname = \"r{i}\"\nto = [\"*@d{i}.example\", \"*@*.d{i}.example\"]\nencrypt = \"required\"\n\n"
        ));
    }
    text.push_str("[[rule]]\nname = \"glob\"\nfrom = \"*@sales-*.example\"\nlinks = \"strip\"\n\n");
    text.push_str("[[rule]]\nname = \"catch-all\"\nchannel = \"xmpp\"\nlinks = \"strip\"\n");
    PolicySet::from_texts(&[(PathBuf::from("bench.toml"), text)], "bench".into())
        .expect("valid policy")
}

fn per_decision(set: &PolicySet, rules: usize) -> f64 {
    let rcpts: Vec<String> = (0..1000)
        .map(|i| format!("user{i}@d{}.example", (i * 7919) % rules.max(1)))
        .collect();
    let n = 200_000;
    let start = Instant::now();
    for i in 0..n {
        let d = set.decide(
            Channel::Smtp,
            "a@corp.example",
            &rcpts[i % rcpts.len()],
            Some(false),
        );
        black_box(d.ok());
    }
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

fn main() {
    println!(
        "{:>8}  {:>10}  {:>12}  {:>14}",
        "rules", "load ms", "µs/decision", "vs 10 rules"
    );
    let mut baseline = None;
    for rules in [10, 1_000, 10_000] {
        let t = Instant::now();
        let s = set(rules);
        let load = t.elapsed().as_secs_f64() * 1e3;
        let us = per_decision(&s, rules);
        let base = *baseline.get_or_insert(us);
        println!("{rules:>8}  {load:>10.1}  {us:>12.3}  {:>13.2}x", us / base);
    }
}
