//! The redirector's pages: small, neutral, no script, no external resources.

/// The interstitial for a valid token: names the destination's host and
/// asks for a click, which POSTs back to the same URL (no `action`: the form
/// submits to the page's own address, whatever prefix a proxy put in front).
pub(crate) fn interstitial(host: &str) -> String {
    let host = escape(host);
    frame(
        "Continue?",
        &format!(
            "<p>This link leads to</p>\n<p class=\"host\">{host}</p>\n\
             <form method=\"post\"><button type=\"submit\">Continue</button></form>\n\
             <p class=\"note\">The link was hidden from automated scanners; \
             continuing opens it in this browser.</p>"
        ),
    )
}

/// A page that says only `text` (errors, refused prefetches, rate limit).
pub(crate) fn neutral(text: &str) -> String {
    frame("Link", &format!("<p>{}</p>", escape(text)))
}

fn frame(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <meta name=\"robots\" content=\"noindex, nofollow\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;padding:3em 1em;color:#222;background:#fafafa}\
main{max-width:32em;margin:auto}\
.host{font-size:1.4em;font-weight:600;word-break:break-all}\
button{font-size:1em;padding:.5em 1.5em;cursor:pointer}\
.note{color:#666;font-size:.9em;margin-top:2em}";

/// Escapes text for HTML content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_is_escaped() {
        let page = interstitial("<script>alert('x')</script>&\"");
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"));
        assert!(!page.contains("<script>"));
        assert!(page.contains("<form method=\"post\">"));
    }
}
