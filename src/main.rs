//! The `sotto` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sotto::config::{Config, LogFormat};

/// sotto — a privacy gateway for outgoing mail and chat.
///
/// sotto sits between an organisation's users and their mail and chat
/// providers. It takes mail over SMTP or LMTP (as a Postfix content filter or
/// a smarthost) and relays it upstream, answering "accepted" only once the
/// upstream accepted.
///
/// Without --config it runs on embedded defaults: SMTP on 127.0.0.1:10025,
/// LMTP on 127.0.0.1:10024, relaying to 127.0.0.1:10026, admin endpoint on
/// 127.0.0.1:9025. Any setting can be overridden with an environment variable
/// SOTTO_<SECTION>__<KEY>, e.g. SOTTO_UPSTREAM__ADDRESS=mx.example:25.
#[derive(Parser)]
#[command(name = "sotto", version, about, long_about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway: the SMTP/LMTP listeners, the relay and the admin endpoint.
    ///
    /// Stops on SIGTERM or Ctrl-C: it stops accepting connections, lets open
    /// transactions finish (at most timeouts.shutdown), then exits 0. Logs go
    /// to standard error; RUST_LOG overrides log.level.
    Serve {
        /// Configuration file (TOML). See sotto.example.toml for every key.
        #[arg(short, long, env = "SOTTO_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Show exactly what would be relayed for a message read from standard input.
    ///
    /// Runs the same pipeline as `serve` (key lookup at RCPT, encryption at
    /// DATA) and writes the result to standard output, exit 0. When a
    /// recipient or the message is refused, the reason goes to standard
    /// error, exit 2. LF line endings in the input are taken as CRLF.
    Transform {
        /// Configuration file (TOML).
        #[arg(short, long, env = "SOTTO_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// Channel the message came in on (only `smtp` for now).
        #[arg(long, default_value = "smtp", value_parser = ["smtp"])]
        channel: String,
        /// Envelope sender.
        #[arg(long, value_name = "ADDRESS")]
        from: String,
        /// Envelope recipient; repeat for several.
        #[arg(long, value_name = "ADDRESS", required = true)]
        to: Vec<String>,
    },
    /// Manage and inspect recipients' OpenPGP certificates.
    Keys {
        /// Configuration file (TOML): keys.dir and the web sources.
        #[arg(short, long, env = "SOTTO_CONFIG", value_name = "FILE", global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Check a configuration and report every problem as `file:line:col: what is wrong`.
    ///
    /// Exits 0 when the configuration (file plus SOTTO_* variables) is valid,
    /// 1 otherwise. Nothing is started.
    Check {
        /// Configuration file (TOML); without it the embedded defaults are checked.
        #[arg(short, long, env = "SOTTO_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// List the certificates in keys.dir: fingerprint, expiry, and per
    /// address whether sotto would use it or why not.
    List,
    /// Copy the certificates of FILE (armoured or binary) into keys.dir as
    /// FINGERPRINT.asc, merging with what is there; secret parts are dropped.
    Import {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Look an address up through the configured sources, in order, and say
    /// which key would be used — or why each candidate was rejected.
    /// Exits 0 when a usable key is found, 1 otherwise.
    Lookup {
        #[arg(value_name = "ADDRESS")]
        address: String,
    },
    /// Fetch each certificate of keys.dir again from the web sources and
    /// merge updates (revocations, new expiry, new subkeys) into its file.
    Refresh,
}

fn load(path: Option<&std::path::Path>) -> Result<Config, ExitCode> {
    Config::load(path, std::env::vars().filter(|(k, _)| k != "SOTTO_CONFIG")).map_err(|e| {
        for p in &e.problems {
            eprintln!("{p}");
        }
        ExitCode::from(1)
    })
}

fn init_logs(cfg: &Config) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(&cfg.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cfg.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match load(config.as_deref()) {
            Ok(_) => {
                println!(
                    "{}: ok",
                    config
                        .as_deref()
                        .map_or("embedded defaults".into(), |p| p.display().to_string())
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Transform {
            config,
            channel: _,
            from,
            to,
        } => {
            let cfg = match load(config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            runtime().map_or(ExitCode::from(1), |rt| {
                rt.block_on(transform(cfg, from, to))
            })
        }
        Command::Keys { config, action } => {
            let cfg = match load(config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            runtime().map_or(ExitCode::from(1), |rt| rt.block_on(keys(cfg, action)))
        }
        Command::Serve { config } => {
            let cfg = match load(config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            init_logs(&cfg);
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("sotto: cannot start the runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            rt.block_on(serve(cfg))
        }
    }
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new()
        .map_err(|e| eprintln!("sotto: cannot start the runtime: {e}"))
        .ok()
}

async fn transform(cfg: Config, from: String, to: Vec<String>) -> ExitCode {
    use std::io::{Read, Write};

    use sotto::envelope::MailFrom;
    use sotto::relay::{Capture, Target, Transaction};

    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("sotto: cannot read standard input: {e}");
        return ExitCode::from(1);
    }
    let message = to_crlf(&input);
    let keys = sotto::keys::KeyStore::from_config(&cfg);
    let crypt = match sotto::transform::Crypt::from_config(&cfg, keys) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sotto: {e}");
            return ExitCode::from(1);
        }
    };
    let capture = Capture::default();
    let gateway = sotto::transform::Gateway::new(capture.clone(), crypt);
    let mail = MailFrom {
        address: from,
        body_8bit: !message.is_ascii(),
        smtputf8: false,
        size: None,
    };
    let mut tx = match gateway.begin(&mail).await {
        Ok(tx) => tx,
        Err(r) => {
            eprintln!("{r}");
            return ExitCode::from(2);
        }
    };
    for rcpt in &to {
        let r = tx.add_rcpt(rcpt).await;
        if !r.is_positive() {
            eprintln!("<{rcpt}>: {r}");
            return ExitCode::from(2);
        }
    }
    let r = tx.commit(message).await;
    if !r.is_positive() {
        eprintln!("{r}");
        return ExitCode::from(2);
    }
    let out = capture
        .delivered()
        .pop()
        .map(|(_, m)| m)
        .unwrap_or_default();
    if std::io::stdout().write_all(&out).is_err() {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// LF line endings to CRLF, leaving existing CRLF alone.
fn to_crlf(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 40);
    for (i, &b) in input.iter().enumerate() {
        if b == b'\n' && (i == 0 || input[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

async fn keys(cfg: Config, action: KeysAction) -> ExitCode {
    use sotto::keys::admin;
    let store = sotto::keys::KeyStore::from_config(&cfg);
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

async fn serve(cfg: Config) -> ExitCode {
    let running = match sotto::serve::start(&cfg).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sotto: {e}");
            return ExitCode::from(1);
        }
    };
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sotto: cannot handle SIGTERM: {e}");
            return ExitCode::from(1);
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    running.shutdown();
    running.wait().await;
    ExitCode::SUCCESS
}
