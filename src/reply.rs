//! SMTP replies: a code, an enhanced status code (RFC 3463) and text.
//!
//! Every error that reaches a client is turned into a [`Reply`] in one place
//! (the module that owns the error); this type only knows how replies look
//! on the wire.

use std::fmt;

/// One SMTP reply, possibly multi-line (lines separated by `\n` in `text`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code such as `5.7.1`; empty for the greeting and the
    /// EHLO reply, which carry none (RFC 2034).
    pub status: String,
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, status: &str, text: impl Into<String>) -> Self {
        Reply {
            code,
            status: status.to_string(),
            text: text.into(),
        }
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// Builds a reply from what another server said: its code, and its
    /// enhanced status code when it gave one whose class matches; otherwise
    /// `X.0.0`. Control characters in the text are dropped so a peer cannot
    /// inject lines.
    pub fn from_peer(code: u16, lines: &[&str], prefix: &str) -> Self {
        let class = code / 100;
        let first = lines.first().copied().unwrap_or("");
        let (status, rest) = match first.split_once(' ') {
            Some((s, rest)) if is_status(s, class) => (s.to_string(), rest),
            _ if is_status(first, class) => (first.to_string(), ""),
            _ => (format!("{class}.0.0"), first),
        };
        let mut text = String::from(prefix);
        text.push_str(&clean(rest));
        for line in lines.iter().skip(1) {
            let line = line
                .split_once(' ')
                .filter(|(s, _)| is_status(s, class))
                .map_or(*line, |(_, r)| r);
            text.push('\n');
            text.push_str(&clean(line));
        }
        Reply { code, status, text }
    }

    /// The one reply for a transaction whose recipients got `replies`
    /// (an LMTP target behind an SMTP client): the first failure, else
    /// the first success; `fallback` if there are none.
    pub fn combined(replies: &[Reply], fallback: Reply) -> Reply {
        replies
            .iter()
            .find(|r| !r.is_positive())
            .or(replies.first())
            .cloned()
            .unwrap_or(fallback)
    }

    /// Appends the wire form (`250-…` continuation lines, CRLF endings).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let lines: Vec<&str> = self.text.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            let line = if self.status.is_empty() {
                format!("{}{}{}\r\n", self.code, sep, line)
            } else {
                format!("{}{}{} {}\r\n", self.code, sep, self.status, line)
            };
            out.extend_from_slice(line.as_bytes());
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.code,
            self.status,
            self.text.replace('\n', " / ")
        )
    }
}

fn is_status(s: &str, class: u16) -> bool {
    let mut parts = s.split('.');
    let (Some(a), Some(b), Some(c), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    a.parse::<u16>().ok() == Some(class)
        && (1..=3).contains(&b.len())
        && (1..=3).contains(&c.len())
        && b.bytes().chain(c.bytes()).all(|x| x.is_ascii_digit())
}

fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(400).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(r: &Reply) -> String {
        let mut v = Vec::new();
        r.write_to(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn single_and_multi_line() {
        assert_eq!(wire(&Reply::new(250, "2.0.0", "ok")), "250 2.0.0 ok\r\n");
        assert_eq!(
            wire(&Reply::new(550, "5.7.1", "a\nb")),
            "550-5.7.1 a\r\n550 5.7.1 b\r\n"
        );
        assert_eq!(
            wire(&Reply::new(250, "", "host\nPIPELINING")),
            "250-host\r\n250 PIPELINING\r\n"
        );
    }

    #[test]
    fn peer_status_kept_when_class_matches() {
        let r = Reply::from_peer(550, &["5.1.1 <b@x>: unknown user"], "upstream: ");
        assert_eq!(
            (r.status.as_str(), r.text.as_str()),
            ("5.1.1", "upstream: <b@x>: unknown user")
        );
        let r = Reply::from_peer(451, &["5.1.1 mismatched class"], "");
        assert_eq!(r.status, "4.0.0");
        let r = Reply::from_peer(421, &["no status\r\nINJECTED"], "");
        assert_eq!(
            (r.status.as_str(), r.text.as_str()),
            ("4.0.0", "no statusINJECTED")
        );
    }
}
