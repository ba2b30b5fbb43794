//! The admin-managed local directory of certificates (`*.asc`, `*.pgp`),
//! re-read when its files change.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sequoia_openpgp::Cert;
use sequoia_openpgp::cert::CertParser;
use sequoia_openpgp::parse::Parse;

/// How often the directory listing is looked at for changes.
const RESCAN: Duration = Duration::from_secs(1);

type Signature = Vec<(PathBuf, Option<SystemTime>, u64)>;

struct State {
    checked: Option<Instant>,
    signature: Signature,
    certs: Arc<Vec<Arc<Cert>>>,
}

/// A directory of certificates.
pub struct DirSource {
    path: PathBuf,
    state: Mutex<State>,
}

impl DirSource {
    pub fn new(path: PathBuf) -> Self {
        DirSource {
            path,
            state: Mutex::new(State {
                checked: None,
                signature: Vec::new(),
                certs: Arc::default(),
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every certificate in the directory, re-read if files changed.
    pub fn certs(&self) -> Arc<Vec<Arc<Cert>>> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.checked.is_some_and(|t| t.elapsed() < RESCAN) {
            return st.certs.clone();
        }
        st.checked = Some(Instant::now());
        let sig = listing(&self.path);
        if sig != st.signature || st.certs.is_empty() {
            let mut certs = Vec::new();
            for (file, _, _) in &sig {
                match read_certs(file) {
                    Ok(cs) => certs.extend(cs.into_iter().map(Arc::new)),
                    Err(e) => {
                        tracing::warn!(event = "key_file_unreadable", file = %file.display(), error = %e)
                    }
                }
            }
            tracing::info!(event = "key_dir_loaded", dir = %self.path.display(), certs = certs.len());
            st.certs = Arc::new(certs);
            st.signature = sig;
        }
        st.certs.clone()
    }
}

fn listing(dir: &Path) -> Signature {
    let mut out: Signature = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "asc" || e == "pgp"))
        .filter_map(|p| {
            let md = std::fs::metadata(&p).ok()?;
            Some((p, md.modified().ok(), md.len()))
        })
        .collect();
    out.sort();
    out
}

/// Reads every certificate in a file (armoured or binary).
pub fn read_certs(file: &Path) -> sequoia_openpgp::Result<Vec<Cert>> {
    let parser = CertParser::from_file(file)?;
    let certs: Vec<Cert> = parser.filter_map(Result::ok).collect();
    Ok(certs)
}
