//! What `sotto keys` does: list, import, look up and refresh certificates.
//! Each returns text for the terminal; nothing here runs in `serve`.

use std::fmt::Write as _;
use std::path::Path;

use sequoia_openpgp::Cert;
use sequoia_openpgp::serialize::SerializeInto;

use super::dir::read_certs;
use super::web::Fetched;
use super::{KeyStore, usable_for};
use crate::config::KeySource;

/// Why an admin command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    #[error("no key directory is configured: set keys.dir")]
    NoDir,
    #[error("{0}")]
    Io(String),
    #[error("`{0}` holds no OpenPGP certificate")]
    NoCert(String),
    #[error(
        "refresh asks the web sources (wkd, vks) for the certificates of keys.dir, \
         and keys.sources = [{}] names none: nothing was refreshed. \
         Add \"wkd\" and/or \"vks\" to keys.sources (e.g. SOTTO_KEYS__SOURCES=dir,wkd,vks)",
        configured.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ")
    )]
    NoWebSource { configured: Vec<KeySource> },
}

fn emails(cert: &Cert) -> Vec<String> {
    let mut v: Vec<String> = cert
        .userids()
        .filter_map(|u| u.userid().email_normalized().ok().flatten())
        .collect();
    v.sort();
    v.dedup();
    v
}

fn expiry(cert: &Cert, store: &KeyStore) -> String {
    match cert
        .with_policy(store.policy(), None)
        .ok()
        .and_then(|vc| vc.primary_key().key_expiration_time())
    {
        Some(t) => format!("expires {}", humantime::format_rfc3339_seconds(t)),
        None => "no expiry".into(),
    }
}

/// Describes a certificate: fingerprint, addresses, expiry, and per address
/// whether sotto would use it (or why not).
pub fn describe(cert: &Cert, store: &KeyStore) -> String {
    let mut s = format!("{}  {}\n", cert.fingerprint().to_hex(), expiry(cert, store));
    for e in emails(cert) {
        match usable_for(cert, &e, store.policy()) {
            Ok(()) => writeln!(s, "    <{e}>  usable").ok(),
            Err(why) => writeln!(s, "    <{e}>  not used: {why}").ok(),
        };
    }
    s
}

/// `sotto keys list`: the certificates in the key directory.
pub fn list(store: &KeyStore) -> Result<String, AdminError> {
    let dir = store.dir().ok_or(AdminError::NoDir)?;
    let certs = dir.certs();
    let mut out = format!(
        "{} certificate(s) in {}\n",
        certs.len(),
        dir.path().display()
    );
    for c in certs.iter() {
        out.push_str(&describe(c, store));
    }
    Ok(out)
}

/// `sotto keys import FILE`: validates and copies each certificate into the
/// key directory as `FINGERPRINT.asc`, merging with what is there.
pub fn import(store: &KeyStore, file: &Path) -> Result<String, AdminError> {
    let dir = store.dir().ok_or(AdminError::NoDir)?;
    let certs = read_certs(file).map_err(|e| AdminError::Io(format!("{}: {e}", file.display())))?;
    if certs.is_empty() {
        return Err(AdminError::NoCert(file.display().to_string()));
    }
    let mut out = String::new();
    for cert in certs {
        let cert = cert.strip_secret_key_material();
        let path = dir
            .path()
            .join(format!("{}.asc", cert.fingerprint().to_hex()));
        let merged = match read_certs(&path).ok().and_then(|v| v.into_iter().next()) {
            Some(old) => old
                .merge_public(cert)
                .map_err(|e| AdminError::Io(e.to_string()))?,
            None => cert,
        };
        write_cert(&path, &merged)?;
        writeln!(out, "imported {}", path.display()).ok();
        out.push_str(&describe(&merged, store));
    }
    Ok(out)
}

fn write_cert(path: &Path, cert: &Cert) -> Result<(), AdminError> {
    let armored = cert
        .armored()
        .to_vec()
        .map_err(|e| AdminError::Io(e.to_string()))?;
    let tmp = path.with_extension("asc.tmp");
    std::fs::write(&tmp, armored).map_err(|e| AdminError::Io(format!("{}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(|e| AdminError::Io(format!("{}: {e}", path.display())))
}

/// `sotto keys lookup ADDRESS`: asks the sources in order; returns the report
/// and whether a usable key was found.
pub async fn lookup(store: &KeyStore, address: &str) -> (String, bool) {
    let l = store.lookup(address).await;
    let mut out = String::new();
    for r in &l.rejected {
        writeln!(
            out,
            "rejected {} from {}: {}",
            r.fingerprint, r.source, r.reason
        )
        .ok();
    }
    for e in &l.errors {
        writeln!(out, "{} lookup failed: {}", e.source, e.error).ok();
    }
    if let Some(line) = l.autocrypt_line() {
        writeln!(out, "{line}").ok();
    }
    match &l.found {
        Some(f) => {
            writeln!(out, "found in {}:", f.source).ok();
            out.push_str(&describe(&f.cert, store));
            (out, true)
        }
        None => {
            writeln!(out, "no usable key for <{address}>").ok();
            (out, false)
        }
    }
}

/// `sotto keys refresh`: fetches each directory certificate again from the
/// web sources (by its addresses) and merges what is new — revocations,
/// new expiry dates, new subkeys — into its file.
pub async fn refresh(store: &KeyStore) -> Result<String, AdminError> {
    let dir = store.dir().ok_or(AdminError::NoDir)?;
    let web = web_sources(&store.inner.sources);
    if web.is_empty() {
        return Err(AdminError::NoWebSource {
            configured: store.inner.sources.clone(),
        });
    }
    let certs = dir.certs();
    if certs.is_empty() {
        return Ok(format!(
            "no certificates in {}: nothing to refresh\n",
            dir.path().display()
        ));
    }
    let mut out = String::new();
    let (mut updated, mut unchanged, mut missing) = (0, 0, 0);
    for cert in certs.iter() {
        let fpr = cert.fingerprint();
        let mut merged = (**cert).clone();
        let mut seen = false;
        for address in emails(cert) {
            for (source, fetched) in store.fetch_all(&address).await {
                match fetched {
                    Fetched::Certs(certs) => {
                        for c in certs.into_iter().filter(|c| c.fingerprint() == fpr) {
                            seen = true;
                            merged = merged
                                .merge_public(c)
                                .map_err(|e| AdminError::Io(e.to_string()))?;
                        }
                    }
                    Fetched::NotFound => {}
                    Fetched::Failed(e) => {
                        writeln!(
                            out,
                            "{}: {source} lookup for <{address}> failed: {e}",
                            fpr.to_hex()
                        )
                        .ok();
                    }
                }
            }
        }
        let status = if merged != **cert {
            let path = dir.path().join(format!("{}.asc", fpr.to_hex()));
            write_cert(&path, &merged)?;
            updated += 1;
            "updated"
        } else if seen {
            unchanged += 1;
            "unchanged"
        } else {
            missing += 1;
            "not found on the web sources"
        };
        writeln!(out, "{}  {status}", fpr.to_hex()).ok();
    }
    let asked: Vec<String> = web.iter().map(ToString::to_string).collect();
    writeln!(
        out,
        "{} certificate(s) of {} asked of {}: {updated} updated, {unchanged} unchanged, {missing} not found",
        certs.len(),
        dir.path().display(),
        asked.join(", ")
    )
    .ok();
    Ok(out)
}

/// The key sources a refresh asks: the configured web ones.
pub fn web_sources(sources: &[KeySource]) -> Vec<KeySource> {
    sources
        .iter()
        .copied()
        .filter(|s| matches!(s, KeySource::Wkd | KeySource::Vks))
        .collect()
}
