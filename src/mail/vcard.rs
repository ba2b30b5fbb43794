//! vCard (RFC 6350 4.0, RFC 2426 3.0; `text/vcard`, `.vcf`) as link
//! scanners and address books read it: which properties hold URIs (`URL`,
//! `PHOTO`/`LOGO`/`SOUND` by reference, `SOURCE`, `X-SOCIALPROFILE`,
//! `KEY`, `FBURL`, …, or `VALUE=uri`), which inline binary data
//! (`ENCODING=b`: not a URL); every other value (`NOTE`, `X-` properties…)
//! is TEXT. A file may hold several cards. The line syntax — folding,
//! escaping, groups (`item1.URL`) — is `contentline`'s.

use super::contentline::{self, Kind, Property, Unparsable};
use crate::links::LinkRewriter;

/// Properties whose value is a URI.
const URI: [&str; 13] = [
    "URL",
    "PHOTO",
    "LOGO",
    "SOUND",
    "SOURCE",
    "KEY",
    "FBURL",
    "CALURI",
    "CALADRURI",
    "MEMBER",
    "RELATED",
    "IMPP",
    "X-SOCIALPROFILE",
];

/// What the value of `prop` (on the unfolded `line`) is.
fn kind(line: &str, prop: &Property) -> Kind {
    if ["B", "BASE64"]
        .iter()
        .any(|e| prop.has_param(line, "ENCODING", e))
    {
        return Kind::Binary;
    }
    let name = prop.name(line);
    if URI.contains(&name.as_str())
        || prop.has_param(line, "VALUE", "URI")
        || prop.has_param(line, "VALUE", "URL")
    {
        Kind::Uri
    } else {
        Kind::Text
    }
}

/// The vCard `text` with the URLs of its properties rewritten; `None`
/// when nothing changed, else the new text and how many values changed.
/// An error when it is not a vCard sotto can read line by line.
pub fn rewrite(text: &str, rw: &LinkRewriter) -> Result<Option<(String, usize)>, Unparsable> {
    contentline::rewrite(text, "VCARD", kind, rw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::test_rewriter as rw;
    use crate::policy::LinkMode;

    const CARDS: &str = "BEGIN:VCARD\r\n\
VERSION:3.0\r\n\
N:Example;Alice;;;\r\n\
FN:Alice Example\r\n\
item1.URL;type=pref:http\\://alice.example.com/home\r\n\
item1.X-ABLabel:_$!<HomePage>!$_\r\n\
X-SOCIALPROFILE;type=twitter:https://social.example/alice\r\n\
PHOTO;ENCODING=b;TYPE=JPEG:aHR0cHM6Ly9oaWRkZW4uZXhhbXBsZS8=\r\n\
NOTE:Met at the fair\\, see https://notes.example.org/a?k=1\\nand www.blog.ex\r\n ample.net/alice\\; thanks\r\n\
END:VCARD\r\n\
BEGIN:VCARD\r\n\
VERSION:4.0\r\n\
FN:Bob\r\n\
PHOTO:https://img.example.net/bob.jpg\r\n\
LOGO;VALUE=uri:data:image/png;base64,aHR0cHM6Ly9oaWRkZW4uZXhhbXBsZS8=\r\n\
SOURCE:https://dir.example.net/bob.vcf\r\n\
END:VCARD\r\n";

    #[test]
    fn every_url_is_rewritten_in_vcard_syntax() {
        let (out, n) = rewrite(CARDS, &rw(LinkMode::Strip)).unwrap().unwrap();
        assert_eq!(n, 5);
        for gone in [
            "alice.example",
            "social.example",
            "notes.example",
            "blog.ex",
            "img.example",
            "dir.example",
        ] {
            assert!(!out.contains(gone), "{gone} in {out}");
        }
        assert!(out.contains("item1.URL;type=pref:[link removed]\r\n"));
        assert!(out.contains(
            "NOTE:Met at the fair\\, see [link removed]\\nand [link removed]\\; thanks\r\n"
        ));
        // Embedded data is no URL, and lines without one stay as they were.
        assert!(out.contains("PHOTO;ENCODING=b;TYPE=JPEG:aHR0cHM6Ly9oaWRkZW4uZXhhbXBsZS8=\r\n"));
        assert!(
            out.contains(
                "LOGO;VALUE=uri:data:image/png;base64,aHR0cHM6Ly9oaWRkZW4uZXhhbXBsZS8=\r\n"
            )
        );
        assert!(out.contains("item1.X-ABLabel:_$!<HomePage>!$_\r\n"));
    }

    #[test]
    fn new_text_is_escaped_for_its_kind() {
        let card = "BEGIN:VCARD\nVERSION:4.0\nNOTE:img https://cdn.example/w_480,c_fill/a.jpg\nURL:https://cdn.example/w_480,c_fill/a.jpg\nEND:VCARD\n";
        let (out, _) = rewrite(card, &rw(LinkMode::Defang)).unwrap().unwrap();
        assert_eq!(
            out,
            "BEGIN:VCARD\nVERSION:4.0\nNOTE:img hxxps://cdn[.]example/w_480\\,c_fill/a.jpg\nURL:hxxps://cdn[.]example/w_480,c_fill/a.jpg\nEND:VCARD\n"
        );
    }

    #[test]
    fn broken_cards_are_refused() {
        // vCard 2.1 quoted-printable soft breaks are not content lines.
        let card = "BEGIN:VCARD\r\nVERSION:2.1\r\nNOTE;ENCODING=QUOTED-PRINTABLE:see https://a.exa=\r\nmple/\r\nEND:VCARD\r\n";
        assert_eq!(
            rewrite(card, &rw(LinkMode::Strip)),
            Err(Unparsable::Line(4))
        );
    }
}
