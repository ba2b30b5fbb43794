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
