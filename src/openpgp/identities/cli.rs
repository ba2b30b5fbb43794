//! `sotto identities …`: list, show, create, export, rotate, revoke, and
//! register a user's own key. Works on the configured store with the
//! passphrase of `store.secret_file`; a change is picked up by running
//! sotto processes within [`super::WATCH_INTERVAL`].

use std::path::PathBuf;
use std::process::ExitCode;

use sequoia_openpgp::Cert;
use sequoia_openpgp::armor::Kind;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::policy::StandardPolicy;
use sequoia_openpgp::serialize::SerializeInto;
use sequoia_openpgp::types::RevocationStatus;

use super::{Identities, Uses, read_passphrase};
use crate::config::Config;

/// What `sotto identities` does.
#[derive(Debug, Clone, clap::Subcommand)]
#[non_exhaustive]
pub enum IdentitiesAction {
    /// Every identity: address, fingerprint.
    List,
    /// One identity: fingerprint, user IDs, created, rotated, revoked, and
    /// whether sotto holds its secret key or it is the user's own.
    Show {
        #[arg(value_name = "ADDRESS")]
        address: String,
    },
    /// Make the identity of ADDRESS (at one of identities.domains) now
    /// rather than at its first message.
    Create {
        #[arg(value_name = "ADDRESS")]
        address: String,
    },
    /// Print the public key of ADDRESS as published (WKD, Autocrypt),
    /// ASCII-armoured.
    Export {
        #[arg(value_name = "ADDRESS")]
        address: String,
    },
    /// Replace the key of ADDRESS with a new one; the old one is no longer
    /// published.
    Rotate {
        #[arg(value_name = "ADDRESS")]
        address: String,
    },
    /// Revoke the key of ADDRESS: WKD and Autocrypt publish the revoked key
    /// (so correspondents learn it is revoked) until its next use makes a
    /// new one.
    Revoke {
        #[arg(value_name = "ADDRESS")]
        address: String,
    },
    /// Register FILE (a public key with a user ID naming ADDRESS) as the
    /// user's own key: sotto publishes it and never decrypts or signs for
    /// them.
    Register {
        #[arg(value_name = "ADDRESS")]
        address: String,
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

/// Runs `sotto identities ACTION`. Exit 0 on success, 1 otherwise.
pub async fn run(cfg: Config, action: IdentitiesAction) -> ExitCode {
    match act(&cfg, action).await {
        Ok(said) => {
            print!("{said}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sotto identities: {e}");
            ExitCode::from(1)
        }
    }
}

fn local(cfg: &Config, address: &str) -> Result<(), String> {
    if cfg.identities.is_local(address) {
        return Ok(());
    }
    Err(format!(
        "{address} is not at one of identities.domains ({}); set them in the configuration",
        if cfg.identities.domains.is_empty() {
            "none set".to_string()
        } else {
            cfg.identities.domains.join(", ")
        }
    ))
}

async fn act(cfg: &Config, action: IdentitiesAction) -> Result<String, String> {
    let secret = cfg.store.secret_file(&cfg.xmpp).ok_or(
        "identities need store.secret_file: a file whose first line is the passphrase for their secret keys",
    )?;
    let passphrase = read_passphrase(secret).map_err(|e| e.to_string())?;
    let store = crate::store::cli::open(cfg)
        .await
        .map_err(|e| e.to_string())?;
    let ids = Identities::new(store.clone(), passphrase);
    let e = |e: super::IdentityError| e.to_string();
    let said = match action {
        IdentitiesAction::List => {
            let mut out = String::new();
            for (address, fpr) in ids.list().await.map_err(e)? {
                out += &format!("{address}  {}\n", fpr.to_hex());
            }
            out
        }
        IdentitiesAction::Show { address } => show(&ids, &address).await?,
        IdentitiesAction::Create { address } => {
            local(cfg, &address)?;
            let key = ids
                .get_or_create_for(&address, Uses::Mail)
                .await
                .map_err(e)?;
            format!("{}  {}\n", key.jid(), key.fingerprint().to_hex())
        }
        IdentitiesAction::Export { address } => {
            let cert = ids
                .published(&address)
                .await
                .map_err(e)?
                .ok_or_else(|| format!("{address} has no identity"))?;
            armored(&cert)?
        }
        IdentitiesAction::Rotate { address } => {
            let key = ids.rotate(&address).await.map_err(e)?;
            format!("{}  {} (new)\n", key.jid(), key.fingerprint().to_hex())
        }
        IdentitiesAction::Revoke { address } => {
            if !ids.revoke(&address).await.map_err(e)? {
                return Err(format!("{address} has no key to revoke"));
            }
            format!("{address}: revoked; WKD and Autocrypt now publish the revocation\n")
        }
        IdentitiesAction::Register { address, file } => {
            let bytes = std::fs::read(&file).map_err(|err| format!("{}: {err}", file.display()))?;
            let cert =
                Cert::from_bytes(&bytes).map_err(|err| format!("{}: {err}", file.display()))?;
            ids.register_own(&address, &cert).await.map_err(e)?;
            format!(
                "{address}: own key {} registered (published; sotto never decrypts for it)\n",
                cert.fingerprint().to_hex()
            )
        }
    };
    store.close().await;
    Ok(said)
}

async fn show(ids: &Identities, address: &str) -> Result<String, String> {
    let row = ids
        .store()
        .identity(&address.to_lowercase())
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{address} has no identity"))?;
    let cert = Cert::from_bytes(&row.tsk).map_err(|e| e.to_string())?;
    let when = |t: Option<i64>| {
        t.map(|t| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64),
            )
            .to_string()
        })
        .unwrap_or_else(|| "-".into())
    };
    let mut out = format!(
        "address      {}\nfingerprint  {}\n",
        row.address, row.fingerprint
    );
    for u in cert.userids() {
        out += &format!(
            "user ID      {}\n",
            String::from_utf8_lossy(u.userid().value())
        );
    }
    let policy = StandardPolicy::new();
    let revoked = matches!(
        cert.revocation_status(&policy, None),
        RevocationStatus::Revoked(_)
    );
    out += &format!(
        "key          {}\ncreated      {}\nrotated      {}\nrevoked      {}{}\n",
        if cert.is_tsk() {
            "held by sotto (secret parts encrypted)"
        } else {
            "the user's own (public only)"
        },
        when(Some(row.created)),
        when(row.rotated),
        when(row.revoked),
        if revoked {
            " (revocation published)"
        } else {
            ""
        },
    );
    Ok(out)
}

fn armored(cert: &Cert) -> Result<String, String> {
    let bytes = cert.to_vec().map_err(|e| e.to_string())?;
    let mut w = sequoia_openpgp::armor::Writer::new(Vec::new(), Kind::PublicKey)
        .map_err(|e| e.to_string())?;
    std::io::Write::write_all(&mut w, &bytes).map_err(|e| e.to_string())?;
    let out = w.finalize().map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}
