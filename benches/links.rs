//! Link rewriting cost: a ~100 KB HTML newsletter with 200 links, rewritten
//! in each mode, beside the cost of parsing the same message with
//! mail-parser alone (the floor any MIME-aware rewrite pays). Prints MB/s
//! and rewritten URLs per second. Run with `cargo bench --bench links`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sotto::config::LinksConfig;
use sotto::links::token::TokenKeys;
use sotto::links::{LinkRewriter, Redirect};
use sotto::mail::rewrite::rewrite_links;
use sotto::policy::LinkMode;

fn newsletter() -> Vec<u8> {
    let mut html = String::from(
        "<html><head><style>.hero{background:url(https://cdn.example.com/hero.jpg)}</style></head><body><table>",
    );
    let mut i = 0;
    while i < 200 {
        html.push_str(&format!(
            "<tr><td style=\"padding:8px\"><a href=\"https://click.example-esp.com/ls/click?upn={i:06}&amp;utm_source=nl&amp;utm_campaign=nov\">Story {i}: a headline that runs on</a><p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore. Excepteur sint occaecat cupidatat non proident, sunt in culpa qui officia deserunt mollit anim id est laborum, sed ut perspiciatis unde omnis iste natus error sit voluptatem accusantium doloremque laudantium, totam rem aperiam eaque ipsa quae ab illo inventore veritatis.</p></td>"
        ));
        i += 1;
        html.push_str(&format!(
            "<td><img src=\"https://img.example.com/p/{i}.jpg\" alt=\"\"></td></tr>\n"
        ));
        i += 1;
    }
    html.push_str("</table></body></html>");
    let mut msg = b"From: news@example.com\r\nTo: reader@example.org\r\nSubject: November news\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n".to_vec();
    msg.extend_from_slice(&sotto::mail::codec::qp_encode(
        html.replace('\n', "\r\n").as_bytes(),
    ));
    msg
}

fn main() {
    let msg = newsletter();
    let mb = msg.len() as f64 / 1e6;
    let keys = Arc::new(TokenKeys::from_secrets(vec![(1, [7u8; 32])]));
    let redirect = Redirect {
        public_url: "https://links.example.org".into(),
        ttl: Duration::from_secs(86400),
        keys,
    };
    println!(
        "message: {} KB, 200 links (HTML, quoted-printable)",
        msg.len() / 1024
    );
    println!(
        "{:<28} {:>10} {:>10} {:>14}",
        "", "ms/msg", "MB/s", "rewrites/s"
    );
    let n = 50;
    let t = Instant::now();
    for _ in 0..n {
        black_box(mail_parser::MessageParser::default().parse(&msg[..]));
    }
    let floor = t.elapsed().as_secs_f64() / n as f64;
    println!(
        "{:<28} {:>10.2} {:>10.1} {:>14}",
        "mail-parser parse (floor)",
        floor * 1e3,
        mb / floor,
        "-"
    );
    for mode in [
        LinkMode::Strip,
        LinkMode::Defang,
        LinkMode::Redact,
        LinkMode::Redirect,
    ] {
        let rw = LinkRewriter::new(mode, &LinksConfig::default(), Some(redirect.clone()));
        let (_, report) = rewrite_links(&msg, &rw).expect("links rewritten");
        let t = Instant::now();
        for _ in 0..n {
            black_box(rewrite_links(&msg, &rw));
        }
        let per = t.elapsed().as_secs_f64() / n as f64;
        println!(
            "{:<28} {:>10.2} {:>10.1} {:>14.0}   ({:.1}x the parse)",
            format!("rewrite, {}", mode.name()),
            per * 1e3,
            mb / per,
            report.urls as f64 / per,
            per / floor
        );
    }
}
