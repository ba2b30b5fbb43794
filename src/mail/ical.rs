//! iCalendar (RFC 5545, `text/calendar`, `.ics`) as link scanners and
//! calendar clients read it: which properties hold URIs (`URL`, `ATTACH`,
//! `CONFERENCE`, `TZURL`, `IMAGE`, `SOURCE`, `VALUE=URI`…), which hold
//! HTML (`FMTTYPE=text/html` on a text value: Outlook's `X-ALT-DESC`),
//! which inline binary data; every other value, `X-` properties included,
//! is TEXT. Parameters (`ALTREP="…"`) are read too. The line syntax —
//! folding, escaping — is `contentline`'s.

use super::contentline::{self, Kind, Property, Unparsable};
use crate::links::LinkRewriter;

/// Properties whose value is a URI (or a calendar user address).
const URI: [&str; 8] = [
    "URL",
    "ATTACH",
    "CONFERENCE",
    "TZURL",
    "IMAGE",
    "SOURCE",
    "ORGANIZER",
    "ATTENDEE",
];

/// What the value of `prop` (on the unfolded `line`) is.
fn kind(line: &str, prop: &Property) -> Kind {
    if prop.has_param(line, "VALUE", "BINARY") || prop.has_param(line, "ENCODING", "BASE64") {
        return Kind::Binary;
    }
    let name = prop.name(line);
    if URI.contains(&name.as_str())
        || prop.has_param(line, "VALUE", "URI")
        || prop.has_param(line, "VALUE", "CAL-ADDRESS")
    {
        Kind::Uri
    } else if prop.has_param(line, "FMTTYPE", "text/html") {
        Kind::Html
    } else {
        Kind::Text
    }
}

/// The calendar `text` with the URLs of its properties rewritten; `None`
/// when nothing changed, else the new text and how many values changed.
/// An error when it is not a calendar sotto can read line by line.
pub fn rewrite(text: &str, rw: &LinkRewriter) -> Result<Option<(String, usize)>, Unparsable> {
    contentline::rewrite(text, "VCALENDAR", kind, rw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::test_rewriter as rw;
    use crate::policy::LinkMode;

    const INVITE: &str = "BEGIN:VCALENDAR\r\n\
VERSION:2.0\r\n\
PRODID:-//Example Corp//Calendar 1.0//EN\r\n\
METHOD:REQUEST\r\n\
BEGIN:VEVENT\r\n\
UID:1234@example.com\r\n\
SUMMARY:Quarterly review\\, part 2\r\n\
DESCRIPTION;ALTREP=\"https://alt.example.com/desc?t=1\":Join: https://meet.exa\r\n mple.com/j/123?pwd=s3cret\\nAgenda\\, notes: www.wiki.example.org/q1\\;\r\n  end\r\n\
LOCATION:Room 4\\, building B\r\n\
URL:https://cal.example.com/e/1234?sig=abc\r\n\
ATTACH;FMTTYPE=application/pdf:https://files.example.com/agenda.pdf\r\n\
ATTACH;VALUE=BINARY;ENCODING=BASE64:aHR0cHM6Ly9oaWRkZW4uZXhhbXBsZS8=\r\n\
X-ALT-DESC;FMTTYPE=text/html:<p>Join <a href=\"https://meet.example.com/j/123\r\n ?pwd=s3cret\">here</a>\\, or not</p>\r\n\
X-MICROSOFT-SKYPETEAMSMEETINGURL:https://teams.example.com/l/meetup/19%3am\r\n\
COMMENT:a long comment without any link at all that is folded over more than one line\r\n  by its writer\r\n\
END:VEVENT\r\n\
END:VCALENDAR\r\n";

    #[test]
    fn every_url_is_rewritten_in_calendar_syntax() {
        let (out, n) = rewrite(INVITE, &rw(LinkMode::Strip)).unwrap().unwrap();
        assert_eq!(n, 6);
        for gone in [
            "alt.example",
            "meet.exa",
            "wiki.example",
            "cal.example",
            "files.example",
            "teams.example",
        ] {
            assert!(!out.contains(gone), "{gone} in {out}");
        }
        let lines: Vec<_> = contentline::lines(&out)
            .into_iter()
            .map(|l| l.unfolded)
            .collect();
        assert!(lines.contains(
            &"DESCRIPTION;ALTREP=\"[link removed]\":Join: [link removed]\\nAgenda\\, notes: [link removed]\\; end".to_string()
        ), "{lines:#?}");
        assert!(lines.contains(&"URL:[link removed]".to_string()));
        assert!(lines.contains(
            &"X-ALT-DESC;FMTTYPE=text/html:<p>Join <a>here</a>\\, or not</p>".to_string()
        ));
        // Inline binary data is not a URL.
        assert!(
            out.contains(
                "ATTACH;VALUE=BINARY;ENCODING=BASE64:aHR0cHM6Ly9oaWRkZW4uZXhhbXBsZS8=\r\n"
            )
        );
    }

    #[test]
    fn lines_without_urls_stay_byte_for_byte() {
        let (out, _) = rewrite(INVITE, &rw(LinkMode::Defang)).unwrap().unwrap();
        for unchanged in [
            "SUMMARY:Quarterly review\\, part 2\r\n",
            "LOCATION:Room 4\\, building B\r\n",
            "COMMENT:a long comment without any link at all that is folded over more than one line\r\n  by its writer\r\n",
        ] {
            assert!(out.contains(unchanged), "{unchanged:?}");
        }
        assert!(out.contains("URL:hxxps://cal[.]example[.]com/e/1234?sig=abc\r\n"));
        for l in out.split("\r\n") {
            assert!(l.len() <= 75 || INVITE.contains(l), "{l:?}");
        }
        assert_eq!(rewrite(INVITE, &rw(LinkMode::Keep)), Ok(None));
        let plain = "BEGIN:VCALENDAR\nSUMMARY:none\nEND:VCALENDAR\n";
        assert_eq!(rewrite(plain, &rw(LinkMode::Strip)), Ok(None));
    }

    #[test]
    fn broken_calendars_are_refused() {
        assert!(
            rewrite(
                "BEGIN:VCALENDAR\r\nDESCRIPTION:https://a.example/\r\n",
                &rw(LinkMode::Strip)
            )
            .is_err()
        );
        assert!(rewrite("DESCRIPTION:https://a.example/\r\n", &rw(LinkMode::Strip)).is_err());
    }
}
