//! What each `sotto` subcommand does. Exit codes: 0 success, 1 a problem
//! with the configuration, policies or environment, 2 (transform) refused.

use std::future::Future;
use std::io::{Read, Write};
use std::process::ExitCode;

use sotto::config::{Config, LogFormat};
use sotto::envelope::MailFrom;
use sotto::keys::KeyStore;
use sotto::policy::{Channel, Policies, PolicySet};
use sotto::relay::{Capture, Target, Transaction};
use sotto::transform::{Crypt, Effective, Gateway, Outcome, decide};
use sotto::xmpp::chat::PreviewKeys;

use crate::{KeysAction, Sources};

fn load(sources: &Sources) -> Result<Config, ExitCode> {
    let env = std::env::vars().filter(|(k, _)| k != "SOTTO_CONFIG");
    let mut cfg = Config::load(sources.config.as_deref(), env).map_err(|e| {
        for p in &e.problems {
            eprintln!("{p}");
        }
        ExitCode::from(1)
    })?;
    if let Some(dir) = &sources.policies {
        cfg.policy.dir = Some(dir.clone());
    }
    Ok(cfg)
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new()
        .map_err(|e| eprintln!("sotto: cannot start the runtime: {e}"))
        .ok()
}

/// Loads the configuration, sets up logs if asked, and runs `f` on a runtime.
pub fn with_config<F, Fut>(sources: &Sources, logs: bool, f: F) -> ExitCode
where
    F: FnOnce(Config) -> Fut,
    Fut: Future<Output = ExitCode>,
{
    let cfg = match load(sources) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if logs {
        init_logs(&cfg);
    }
    match runtime() {
        Some(rt) => rt.block_on(f(cfg)),
        None => ExitCode::from(1),
    }
}

fn init_logs(cfg: &Config) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|f| !f.trim().is_empty())
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(&cfg.log.level));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match cfg.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn policies(cfg: &Config) -> Result<std::sync::Arc<Policies>, ExitCode> {
    Policies::load(cfg.policy.dir.clone()).map_err(|problems| {
        for p in &problems {
            eprintln!("{p}");
        }
        ExitCode::from(1)
    })
}

fn crypt(cfg: &Config) -> Result<Crypt, ExitCode> {
    Crypt::from_config(cfg, KeyStore::from_config(cfg)).map_err(|e| {
        eprintln!("sotto: {e}");
        ExitCode::from(1)
    })
}

/// `sotto check`: the configuration, then the policy files.
pub fn check(sources: &Sources) -> ExitCode {
    let cfg = match load(sources) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = sotto::links::token::TokenKeys::from_config(&cfg.redirect) {
        eprintln!("redirect.keys: {e}");
        return ExitCode::from(1);
    }
    let set = match PolicySet::load(cfg.policy.dir.as_deref()) {
        Ok(s) => s,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            return ExitCode::from(1);
        }
    };
    let unmet = set.unmet_needs(&cfg);
    for problem in &unmet {
        eprintln!("{problem}");
    }
    if !unmet.is_empty() {
        return ExitCode::from(1);
    }
    let what = sources
        .config
        .as_deref()
        .map_or("embedded defaults".into(), |p| p.display().to_string());
    println!(
        "{what}: ok; {} policy rule(s) from {}",
        set.rule_count(),
        set.source
    );
    ExitCode::SUCCESS
}

/// `sotto explain`.
pub async fn explain(cfg: Config, channel: String, from: String, to: Vec<String>) -> ExitCode {
    let channel = Channel::parse(&channel).unwrap_or(Channel::Smtp);
    let set = match policies(&cfg) {
        Ok(p) => p.current(),
        Err(code) => return code,
    };
    let keys = KeyStore::from_config(&cfg);
    if let Some(store) = sotto::store::cli::preview_store(&cfg) {
        keys.set_store(store);
    }
    let chat_keys = match channel {
        Channel::Xmpp => match preview_keys(&cfg, keys.clone()) {
            Ok(k) => Some(k),
            Err(code) => return code,
        },
        Channel::Smtp => None,
    };
    println!("policies: {}", set.source);
    for rcpt in &to {
        println!("\n{channel} from <{from}> to <{rcpt}>:");
        let outcome = match &chat_keys {
            Some(k) => decide(&set, k, channel, &from, rcpt).await,
            None => decide(&set, &keys, channel, &from, rcpt).await,
        };
        let (decision, lookup, verdict) = match outcome {
            Outcome::Accept {
                effective,
                decision,
                lookup,
                ..
            } => {
                let relayed = if effective.encrypt { "" } else { "relayed " };
                (
                    decision,
                    lookup,
                    format!("{relayed}{}", summary(channel, &effective)),
                )
            }
            Outcome::Refuse {
                reply,
                decision,
                lookup,
            } => (decision, lookup, format!("refused: {reply}")),
        };
        // A local chat user gets a key on first need: what serve would do.
        let verdict = match (&lookup, decision.treatment.encrypt) {
            (Some(l), enc)
                if enc != sotto::config::Encrypt::Never
                    && l.found.is_none()
                    && l.errors.iter().any(|e| {
                        e.source == sotto::config::KeySource::Sotto
                            && e.error == sotto::xmpp::chat::NO_KEY_YET
                    }) =>
            {
                format!(
                    "encrypted ({}) with the key sotto makes for this local user; links: {}",
                    sotto::policy::Value::XmppFormat(decision.treatment.xmpp_format),
                    decision.treatment.links_when_encrypted.name()
                )
            }
            _ => verdict,
        };
        print!("{}", set.explain(&decision));
        match lookup {
            None => println!("key: not looked up (this treatment never encrypts)"),
            Some(l) => {
                match &l.found {
                    Some(f) => {
                        println!("key: {} from {}", f.cert.fingerprint().to_hex(), f.source)
                    }
                    None => println!("key: none ({})", l.why_none()),
                }
                if let Some(line) = l.autocrypt_line() {
                    println!("{line}");
                }
            }
        }
        println!("result: {verdict}");
    }
    ExitCode::SUCCESS
}

/// Chat recipients' keys for `explain --channel xmpp`, read-only.
fn preview_keys(cfg: &Config, keys: KeyStore) -> Result<PreviewKeys, ExitCode> {
    let users = sotto::store::cli::preview_users(cfg).map_err(|e| {
        eprintln!("sotto: {e}");
        ExitCode::from(1)
    })?;
    Ok(PreviewKeys {
        keys,
        users,
        domain: cfg.xmpp.domain.clone(),
    })
}

/// `sotto transform`: what `serve` would relay for the message on
/// standard input. Recipients are grouped by treatment as over LMTP (each
/// group one delivery); one group prints its message alone, several print
/// each after a header line (see `--help`). Refusals go to standard error.
pub async fn transform(cfg: Config, from: String, to: Vec<String>) -> ExitCode {
    let message = match read_message() {
        Ok(m) => m,
        Err(code) => return code,
    };
    let (policies, crypt) = match (policies(&cfg), crypt(&cfg)) {
        (Ok(p), Ok(c)) => (p, c),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let capture = Capture::default();
    let gateway = Gateway::new(capture.clone(), crypt, policies);
    let mail = MailFrom {
        address: from.clone(),
        body_8bit: !message.is_ascii(),
        smtputf8: false,
        size: None,
        // One delivery per treatment, as over LMTP.
        per_recipient: true,
    };
    let mut tx = match gateway.begin(&mail).await {
        Ok(tx) => tx,
        Err(r) => {
            eprintln!("{r}");
            return ExitCode::from(2);
        }
    };
    let mut accepted = Vec::new();
    for rcpt in &to {
        let r = tx.add_rcpt(rcpt).await;
        if r.is_positive() {
            accepted.push(rcpt);
        } else {
            eprintln!("<{rcpt}>: {r}");
        }
    }
    if accepted.is_empty() {
        tx.abort().await;
        return ExitCode::from(2);
    }
    let replies = tx.commit_each(message, accepted.len()).await;
    for (rcpt, r) in accepted.iter().zip(&replies) {
        if !r.is_positive() {
            eprintln!("<{rcpt}>: {r}");
        }
    }
    let delivered = capture.delivered();
    let mut out = Vec::new();
    match delivered.as_slice() {
        [] => return ExitCode::from(2),
        [(_, only)] => out.extend_from_slice(only),
        groups => {
            let set = gateway.policies().current();
            let keys = gateway.crypt().keys.clone();
            for (envelope, relayed) in groups {
                let Some(first) = envelope.rcpts.first() else {
                    continue;
                };
                let treatment = match decide(&set, &keys, Channel::Smtp, &from, first).await {
                    Outcome::Accept { effective, .. } => summary(Channel::Smtp, &effective),
                    Outcome::Refuse { reply, .. } => format!("now refused: {reply}"),
                };
                out.extend_from_slice(
                    format!(
                        "{GROUP_MARK} {} ({treatment}), {} bytes:\n",
                        envelope.rcpts.join(", "),
                        relayed.len()
                    )
                    .as_bytes(),
                );
                out.extend_from_slice(relayed);
            }
        }
    }
    print_bytes(&out)
}

/// The message on standard input, LF line endings taken as CRLF.
fn read_message() -> Result<Vec<u8>, ExitCode> {
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("sotto: cannot read standard input: {e}");
        return Err(ExitCode::from(1));
    }
    Ok(sotto::mail::crlf(&input))
}

/// Writes `out` to standard output: exit 0, or 1 if it cannot.
fn print_bytes(out: &[u8]) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    if stdout.write_all(out).and_then(|()| stdout.flush()).is_err() {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// `sotto transform --inbound`: what the inbound path would deliver, in
/// the same output format as `transform`.
pub async fn transform_inbound(cfg: Config, from: String, to: Vec<String>) -> ExitCode {
    let message = match read_message() {
        Ok(m) => m,
        Err(code) => return code,
    };
    let deliveries = match sotto::inbound::preview::transform(&cfg, &from, &to, message).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("sotto: {e}");
            return ExitCode::from(2);
        }
    };
    let mut out = Vec::new();
    match deliveries.as_slice() {
        [(_, only)] => out.extend_from_slice(only),
        many => {
            for (rcpts, bytes) in many {
                out.extend_from_slice(
                    format!(
                        "==> sotto would deliver to {}, {} bytes:\n",
                        rcpts.join(", "),
                        bytes.len()
                    )
                    .as_bytes(),
                );
                out.extend_from_slice(bytes);
            }
        }
    }
    print_bytes(&out)
}

/// Starts the header line of each group in `transform`'s output when
/// recipients get different treatments.
const GROUP_MARK: &str = "==> sotto would relay to";

/// A treatment as it reads in `explain` and `transform`: "encrypted (ox);
/// signed; links: keep; no-store hints".
fn summary(channel: Channel, e: &Effective) -> String {
    let what = if e.encrypt { "encrypted" } else { "readable" };
    let format = match (channel, e.encrypt) {
        (Channel::Xmpp, true) => format!(" ({})", sotto::policy::Value::XmppFormat(e.xmpp_format)),
        _ => String::new(),
    };
    let signed = match e.sign {
        sotto::policy::SignMode::Off => "",
        sotto::policy::SignMode::Organisation => "; signed (organisation key)",
        sotto::policy::SignMode::Sender => "; signed (sender's identity, if local)",
    };
    let store = if e.store { "" } else { "; no-store hints" };
    format!("{what}{format}{signed}; links: {}{store}", e.links.name())
}

/// `sotto keys …`.
pub async fn keys(cfg: Config, action: KeysAction) -> ExitCode {
    use sotto::keys::admin;
    let store = KeyStore::from_config(&cfg);
    if let Some(s) = sotto::store::cli::preview_store(&cfg) {
        store.set_store(s);
    }
    let result = match action {
        KeysAction::List => admin::list(&store),
        KeysAction::Import { file } => admin::import(&store, &file),
        KeysAction::Refresh => admin::refresh(&store).await,
        KeysAction::Lookup { address } => {
            let (text, found) = admin::lookup(&store, &address).await;
            print!("{text}");
            return if found {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            };
        }
    };
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sotto keys: {e}");
            ExitCode::from(1)
        }
    }
}

/// `sotto redirect`: the redirector alone, until SIGTERM or Ctrl-C.
pub async fn redirect(cfg: Config) -> ExitCode {
    let keys = match sotto::links::token::TokenKeys::from_config(&cfg.redirect) {
        Ok(k) => std::sync::Arc::new(k),
        Err(e) => {
            eprintln!("sotto: redirect.keys: {e}");
            return ExitCode::from(1);
        }
    };
    if cfg.redirect.listen.is_empty() {
        eprintln!("sotto: redirect.listen is empty: nothing to run");
        return ExitCode::from(1);
    }
    let listener = match tokio::net::TcpListener::bind(&cfg.redirect.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "sotto: cannot listen on {} (redirect.listen): {e}",
                cfg.redirect.listen
            );
            return ExitCode::from(1);
        }
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let redirector = sotto::redirect::Redirector::new(keys, &cfg.redirect);
    tracing::info!(event = "listening", protocol = "redirect", addr = %cfg.redirect.listen);
    let server = tokio::spawn(sotto::redirect::run(listener, redirector, shutdown.clone()));
    wait_for_stop().await;
    shutdown.cancel();
    let _ = server.await;
    ExitCode::SUCCESS
}

async fn wait_for_stop() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// `sotto serve`: runs until SIGTERM or Ctrl-C.
pub async fn serve(cfg: Config) -> ExitCode {
    let running = match sotto::serve::start(&cfg).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sotto: {e}");
            return ExitCode::from(1);
        }
    };
    wait_for_stop().await;
    running.shutdown();
    running.wait().await;
    ExitCode::SUCCESS
}
