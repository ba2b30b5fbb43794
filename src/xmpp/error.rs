//! Why a stream cannot be framed, and the stream error the proxy sends for it.

use super::framer::STREAM_ERROR_NS;

/// Why a stream cannot be framed. Each maps to the stream error condition the
/// proxy sends ([`FrameError::stream_error_condition`]); `Display` is the cause
/// for the log and never contains stanza content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A stanza or stream header is larger than `max_stanza_bytes`.
    #[error("stanza larger than {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// Elements are nested deeper than `max_depth`.
    #[error("elements nested deeper than {limit}")]
    TooDeep {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// An element has more than `max_attributes` attributes.
    #[error("more than {limit} attributes on one element")]
    TooManyAttributes {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// A name, attribute value or reference is longer than the parser's
    /// token limit.
    #[error("name or attribute value longer than {limit} bytes")]
    TokenTooLong {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// A document type declaration (`<!DOCTYPE`), with or without an internal
    /// subset: DTDs, and so entity declarations, are never processed.
    #[error("document type declaration")]
    Doctype,
    /// A markup declaration (`<!ENTITY`, `<!ELEMENT`, `<!ATTLIST`,
    /// `<!NOTATION`) outside of a DTD.
    #[error("markup declaration outside a DTD")]
    MarkupDeclaration,
    /// An XML comment.
    #[error("comment")]
    Comment,
    /// A processing instruction, or an XML declaration other than at the very
    /// start of a stream.
    #[error("processing instruction")]
    ProcessingInstruction,
    /// An entity reference other than the five predefined ones.
    #[error("reference to an undeclared entity")]
    EntityReference,
    /// Another restricted XML feature (an XML version other than 1.0, a
    /// non-standalone document).
    #[error("restricted XML: {0}")]
    RestrictedXml(&'static str),
    /// The XML declaration names an encoding other than UTF-8.
    #[error("encoding other than UTF-8")]
    UnsupportedEncoding,
    /// Bytes that are not UTF-8.
    #[error("invalid UTF-8")]
    InvalidUtf8,
    /// Any other XML syntax or namespace error: mismatched tags, garbage,
    /// undeclared prefixes, duplicate attributes, characters not allowed in
    /// XML.
    #[error("not well-formed: {0}")]
    NotWellFormed(String),
    /// The input ended inside the stream (after [`Framer::finish`](super::framer::Framer::finish)).
    #[error("stream ended before it was closed")]
    UnexpectedEof,
    /// The root element is not in the stream namespace.
    #[error("root element is not in the stream namespace")]
    InvalidNamespace,
    /// Well-formed XML that is not a valid XMPP stream or stanza: a root
    /// element that is not `<stream>`, text between stanzas.
    #[error("bad format: {0}")]
    BadFormat(&'static str),
}

impl FrameError {
    /// The RFC 6120 (section 4.9.3) stream error condition to send for this
    /// error: `restricted-xml`, `not-well-formed`, `policy-violation`,
    /// `unsupported-encoding`, `invalid-namespace` or `bad-format`.
    pub fn stream_error_condition(&self) -> &'static str {
        match self {
            Self::TooLarge { .. }
            | Self::TooDeep { .. }
            | Self::TooManyAttributes { .. }
            | Self::TokenTooLong { .. } => "policy-violation",
            Self::Doctype
            | Self::MarkupDeclaration
            | Self::Comment
            | Self::ProcessingInstruction
            | Self::EntityReference
            | Self::RestrictedXml(_) => "restricted-xml",
            Self::UnsupportedEncoding => "unsupported-encoding",
            Self::InvalidUtf8 | Self::NotWellFormed(_) | Self::UnexpectedEof => "not-well-formed",
            Self::InvalidNamespace => "invalid-namespace",
            Self::BadFormat(_) => "bad-format",
        }
    }

    /// A fixed, short name for the error, for logs, metrics and test corpora
    /// (`too_large`, `doctype`, `not_well_formed`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::TooDeep { .. } => "too_deep",
            Self::TooManyAttributes { .. } => "too_many_attributes",
            Self::TokenTooLong { .. } => "token_too_long",
            Self::Doctype => "doctype",
            Self::MarkupDeclaration => "markup_declaration",
            Self::Comment => "comment",
            Self::ProcessingInstruction => "processing_instruction",
            Self::EntityReference => "entity_reference",
            Self::RestrictedXml(_) => "restricted_xml",
            Self::UnsupportedEncoding => "unsupported_encoding",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::NotWellFormed(_) => "not_well_formed",
            Self::UnexpectedEof => "unexpected_eof",
            Self::InvalidNamespace => "invalid_namespace",
            Self::BadFormat(_) => "bad_format",
        }
    }
}

/// The bytes that end a stream with an error:
/// `<stream:error><CONDITION xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>`.
///
/// `condition` is one of RFC 6120's condition names, usually
/// [`FrameError::stream_error_condition`]; anything that is not a plain
/// lower-case name becomes `undefined-condition`. The caller must have sent a
/// stream header first (RFC 6120 4.9.1.1), one that binds `stream:`.
pub fn stream_error(condition: &str) -> Vec<u8> {
    let plain = !condition.is_empty()
        && condition
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-');
    let condition = if plain {
        condition
    } else {
        "undefined-condition"
    };
    format!("<stream:error><{condition} xmlns='{STREAM_ERROR_NS}'/></stream:error></stream:stream>")
        .into_bytes()
}
