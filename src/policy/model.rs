//! What a policy decides: the treatment of one message for one recipient,
//! field by field, and where each field's value came from.

use std::fmt;
use std::path::PathBuf;

pub use crate::config::{Encrypt, SubjectMode};

/// The channel a message travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Smtp,
    Xmpp,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Smtp, Channel::Xmpp];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "smtp" => Some(Channel::Smtp),
            "xmpp" => Some(Channel::Xmpp),
            _ => None,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Channel::Smtp => "smtp",
            Channel::Xmpp => "xmpp",
        })
    }
}

/// What happens to a recipient without a usable key when encryption is
/// wanted but not required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingKey {
    /// Relay as is.
    Plain,
    /// Refuse the recipient (as `encrypt = "required"` does).
    Reject,
}

/// How URLs in what stays readable are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkMode {
    Keep,
    Strip,
    Defang,
    Redact,
    Redirect,
}

/// How a chat message is encrypted (channel `xmpp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum XmppFormat {
    /// OpenPGP for XMPP (XEP-0373/0374): signed and encrypted `<signcrypt/>`.
    Ox,
    /// Legacy OpenPGP (XEP-0027, `jabber:x:encrypted`), for clients that
    /// only speak that: the body only, not signed.
    Legacy,
}

/// Whose key signs an encrypted message (mail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignMode {
    /// Not signed.
    Off,
    /// The organisation's key (`crypt.signing_key`); `sign = true`.
    Organisation,
    /// The sender's own identity, when the sender is a local user with one
    /// (`identities.domains`); otherwise not signed. Signed and encrypted
    /// together (RFC 3156 section 6.2).
    Sender,
}

impl SignMode {
    pub fn name(self) -> &'static str {
        match self {
            SignMode::Off => "false",
            SignMode::Organisation => "organisation",
            SignMode::Sender => "sender",
        }
    }
}

/// What a local sender's `Autocrypt:` header says (Autocrypt Level 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PreferEncrypt {
    /// `prefer-encrypt=mutual`: correspondents' clients encrypt by default.
    Mutual,
    /// No `prefer-encrypt` attribute.
    NoPreference,
}

/// What to do when a recipient's only key is an Autocrypt one that Level 1
/// discourages (stale: their newest mail came without an Autocrypt header
/// for over 35 days; or only gossiped by someone else).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StaleKey {
    /// Encrypt anyway: nothing readable leaves, at the risk that the
    /// recipient no longer has the key.
    Encrypt,
    /// Treat the recipient as having no key (then `encrypt` and
    /// `missing_key` decide).
    Plain,
}

/// What the provider may keep (`store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreMode {
    /// `true`: as it comes.
    Yes,
    /// `false` (chat): XEP-0334 `<no-store/>` and `<no-copy/>` hints ask
    /// servers not to archive or copy the message.
    No,
    /// `"encrypted"` (mail arriving for a local user): the inbound path
    /// encrypts what it delivers to the recipient's identity, so the
    /// mailbox holds only ciphertext (read plain through the IMAP proxy).
    /// For chat, the same as `true`.
    Encrypted,
}

impl StoreMode {
    /// Whether servers may archive it (no no-store hints).
    pub fn archived(self) -> bool {
        self != StoreMode::No
    }
}

/// One treatment field's value as written in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Encrypt(Encrypt),
    MissingKey(MissingKey),
    Links(LinkMode),
    Subject(SubjectMode),
    Bool(bool),
    Path(PathBuf),
    XmppFormat(XmppFormat),
    Sign(SignMode),
    PreferEncrypt(PreferEncrypt),
    StaleKey(StaleKey),
    Store(StoreMode),
}

/// The treatment fields, in the order `explain` prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Encrypt,
    MissingKey,
    Links,
    LinksWhenEncrypted,
    Subject,
    Sign,
    EncryptToSender,
    ArchiveKey,
    XmppFormat,
    Store,
    Autocrypt,
    StaleKey,
}

impl Field {
    pub const ALL: [Field; 12] = [
        Field::Encrypt,
        Field::MissingKey,
        Field::Links,
        Field::LinksWhenEncrypted,
        Field::Subject,
        Field::Sign,
        Field::EncryptToSender,
        Field::ArchiveKey,
        Field::XmppFormat,
        Field::Store,
        Field::Autocrypt,
        Field::StaleKey,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::Encrypt => "encrypt",
            Field::MissingKey => "missing_key",
            Field::Links => "links",
            Field::LinksWhenEncrypted => "links_when_encrypted",
            Field::Subject => "subject",
            Field::Sign => "sign",
            Field::EncryptToSender => "encrypt_to_sender",
            Field::ArchiveKey => "archive_key",
            Field::XmppFormat => "xmpp_format",
            Field::Store => "store",
            Field::Autocrypt => "autocrypt",
            Field::StaleKey => "stale_key",
        }
    }

    pub fn from_name(s: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == s)
    }

    /// Parses a value for this field from its TOML text (strings) or boolean.
    pub fn parse(self, s: Option<&str>, b: Option<bool>) -> Result<Value, String> {
        let choice = |opts: &[&str]| {
            format!(
                "expected one of {}",
                opts.iter()
                    .map(|o| format!("\"{o}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        match self {
            Field::Encrypt => match s {
                Some("required") => Ok(Value::Encrypt(Encrypt::Required)),
                Some("if-key") => Ok(Value::Encrypt(Encrypt::IfKey)),
                Some("never") => Ok(Value::Encrypt(Encrypt::Never)),
                _ => Err(choice(&["required", "if-key", "never"])),
            },
            Field::MissingKey => match s {
                Some("plain") => Ok(Value::MissingKey(MissingKey::Plain)),
                Some("reject") => Ok(Value::MissingKey(MissingKey::Reject)),
                _ => Err(choice(&["plain", "reject"])),
            },
            Field::Links | Field::LinksWhenEncrypted => match s.and_then(LinkMode::parse) {
                Some(m) => Ok(Value::Links(m)),
                None => Err(choice(&["keep", "strip", "defang", "redact", "redirect"])),
            },
            Field::Subject => match s {
                Some("protect") => Ok(Value::Subject(SubjectMode::Protect)),
                Some("keep") => Ok(Value::Subject(SubjectMode::Keep)),
                _ => Err(choice(&["protect", "keep"])),
            },
            Field::Sign => match (s, b) {
                (_, Some(false)) => Ok(Value::Sign(SignMode::Off)),
                (_, Some(true)) | (Some("organisation"), _) => {
                    Ok(Value::Sign(SignMode::Organisation))
                }
                (Some("sender"), _) => Ok(Value::Sign(SignMode::Sender)),
                _ => Err(format!(
                    "{}, true (= \"organisation\") or false",
                    choice(&["sender", "organisation"])
                )),
            },
            Field::Autocrypt => match s {
                Some("mutual") => Ok(Value::PreferEncrypt(PreferEncrypt::Mutual)),
                Some("nopreference") => Ok(Value::PreferEncrypt(PreferEncrypt::NoPreference)),
                _ => Err(choice(&["mutual", "nopreference"])),
            },
            Field::StaleKey => match s {
                Some("encrypt") => Ok(Value::StaleKey(StaleKey::Encrypt)),
                Some("plain") => Ok(Value::StaleKey(StaleKey::Plain)),
                _ => Err(choice(&["encrypt", "plain"])),
            },
            Field::EncryptToSender => b
                .map(Value::Bool)
                .ok_or_else(|| "expected true or false".into()),
            Field::Store => match (s, b) {
                (_, Some(true)) => Ok(Value::Store(StoreMode::Yes)),
                (_, Some(false)) => Ok(Value::Store(StoreMode::No)),
                (Some("encrypted"), _) => Ok(Value::Store(StoreMode::Encrypted)),
                _ => Err("expected true, false or \"encrypted\"".into()),
            },
            Field::ArchiveKey => match s {
                Some(p) if !p.is_empty() => Ok(Value::Path(PathBuf::from(p))),
                _ => Err("expected the path of a certificate file".into()),
            },
            Field::XmppFormat => match s {
                Some("ox") => Ok(Value::XmppFormat(XmppFormat::Ox)),
                Some("legacy") => Ok(Value::XmppFormat(XmppFormat::Legacy)),
                _ => Err(choice(&["ox", "legacy"])),
            },
        }
    }
}

impl LinkMode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "keep" => Some(LinkMode::Keep),
            "strip" => Some(LinkMode::Strip),
            "defang" => Some(LinkMode::Defang),
            "redact" => Some(LinkMode::Redact),
            "redirect" => Some(LinkMode::Redirect),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LinkMode::Keep => "keep",
            LinkMode::Strip => "strip",
            LinkMode::Defang => "defang",
            LinkMode::Redact => "redact",
            LinkMode::Redirect => "redirect",
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Encrypt(Encrypt::Required) => f.write_str("required"),
            Value::Encrypt(Encrypt::IfKey) => f.write_str("if-key"),
            Value::Encrypt(Encrypt::Never) => f.write_str("never"),
            Value::MissingKey(MissingKey::Plain) => f.write_str("plain"),
            Value::MissingKey(MissingKey::Reject) => f.write_str("reject"),
            Value::Links(m) => f.write_str(m.name()),
            Value::Subject(SubjectMode::Protect) => f.write_str("protect"),
            Value::Subject(SubjectMode::Keep) => f.write_str("keep"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Path(p) => write!(f, "{}", p.display()),
            Value::XmppFormat(XmppFormat::Ox) => f.write_str("ox"),
            Value::XmppFormat(XmppFormat::Legacy) => f.write_str("legacy"),
            Value::Sign(m) => f.write_str(m.name()),
            Value::PreferEncrypt(PreferEncrypt::Mutual) => f.write_str("mutual"),
            Value::PreferEncrypt(PreferEncrypt::NoPreference) => f.write_str("nopreference"),
            Value::StaleKey(StaleKey::Encrypt) => f.write_str("encrypt"),
            Value::StaleKey(StaleKey::Plain) => f.write_str("plain"),
            Value::Store(StoreMode::Yes) => f.write_str("true"),
            Value::Store(StoreMode::No) => f.write_str("false"),
            Value::Store(StoreMode::Encrypted) => f.write_str("encrypted"),
        }
    }
}

/// Where something is in the policy files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// What decided a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// sotto's own default: no file set the field.
    Builtin,
    /// A `[defaults]` table.
    Defaults(Loc),
    /// A rule, by name.
    Rule { name: String, loc: Loc },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Builtin => f.write_str("built-in default"),
            Origin::Defaults(l) => write!(f, "[defaults] at {l}"),
            Origin::Rule { name, loc } => write!(f, "rule \"{name}\" at {loc}"),
        }
    }
}

/// The full treatment of one message for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Treatment {
    pub encrypt: Encrypt,
    pub missing_key: MissingKey,
    pub links: LinkMode,
    pub links_when_encrypted: LinkMode,
    pub subject: SubjectMode,
    pub sign: SignMode,
    pub encrypt_to_sender: bool,
    pub archive_key: Option<PathBuf>,
    /// Chat only: the encryption format.
    pub xmpp_format: XmppFormat,
    /// What the provider may keep: see [`StoreMode`].
    pub store: StoreMode,
    /// Mail from a local user: what its `Autocrypt:` header says.
    pub autocrypt: PreferEncrypt,
    /// A recipient whose only key is a discouraged Autocrypt one.
    pub stale_key: StaleKey,
}

impl Default for Treatment {
    /// sotto's built-in defaults, used for fields no file sets.
    fn default() -> Self {
        Treatment {
            encrypt: Encrypt::IfKey,
            missing_key: MissingKey::Plain,
            links: LinkMode::Keep,
            links_when_encrypted: LinkMode::Keep,
            subject: SubjectMode::Protect,
            sign: SignMode::Off,
            encrypt_to_sender: false,
            archive_key: None,
            xmpp_format: XmppFormat::Ox,
            store: StoreMode::Yes,
            autocrypt: PreferEncrypt::Mutual,
            stale_key: StaleKey::Encrypt,
        }
    }
}

impl Treatment {
    pub fn set(&mut self, field: Field, value: &Value) {
        match (field, value) {
            (Field::Encrypt, Value::Encrypt(v)) => self.encrypt = *v,
            (Field::MissingKey, Value::MissingKey(v)) => self.missing_key = *v,
            (Field::Links, Value::Links(v)) => self.links = *v,
            (Field::LinksWhenEncrypted, Value::Links(v)) => self.links_when_encrypted = *v,
            (Field::Subject, Value::Subject(v)) => self.subject = *v,
            (Field::Sign, Value::Sign(v)) => self.sign = *v,
            (Field::Autocrypt, Value::PreferEncrypt(v)) => self.autocrypt = *v,
            (Field::StaleKey, Value::StaleKey(v)) => self.stale_key = *v,
            (Field::EncryptToSender, Value::Bool(v)) => self.encrypt_to_sender = *v,
            (Field::ArchiveKey, Value::Path(v)) => self.archive_key = Some(v.clone()),
            (Field::XmppFormat, Value::XmppFormat(v)) => self.xmpp_format = *v,
            (Field::Store, Value::Store(v)) => self.store = *v,
            _ => {}
        }
    }

    pub fn get(&self, field: Field) -> Value {
        match field {
            Field::Encrypt => Value::Encrypt(self.encrypt),
            Field::MissingKey => Value::MissingKey(self.missing_key),
            Field::Links => Value::Links(self.links),
            Field::LinksWhenEncrypted => Value::Links(self.links_when_encrypted),
            Field::Subject => Value::Subject(self.subject),
            Field::Sign => Value::Sign(self.sign),
            Field::Autocrypt => Value::PreferEncrypt(self.autocrypt),
            Field::StaleKey => Value::StaleKey(self.stale_key),
            Field::EncryptToSender => Value::Bool(self.encrypt_to_sender),
            Field::ArchiveKey => match &self.archive_key {
                Some(p) => Value::Path(p.clone()),
                None => Value::Path(PathBuf::from("(none)")),
            },
            Field::XmppFormat => Value::XmppFormat(self.xmpp_format),
            Field::Store => Value::Store(self.store),
        }
    }

    /// Whether a recipient without a usable key is refused.
    pub fn refuses_without_key(&self) -> bool {
        self.encrypt == Encrypt::Required
            || (self.encrypt == Encrypt::IfKey && self.missing_key == MissingKey::Reject)
    }
}
