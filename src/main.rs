//! The `sotto` command line: argument parsing and dispatch. The commands
//! themselves are in `commands.rs`.

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// sotto — a privacy gateway for outgoing mail and chat.
///
/// sotto sits between an organisation's users and their mail and chat
/// providers. It takes mail over SMTP or LMTP (as a Postfix content filter or
/// a smarthost), encrypts it to each recipient's OpenPGP key as the policy
/// files say, and relays it upstream, answering "accepted" only once the
/// upstream accepted.
///
/// Without --config it runs on embedded defaults: SMTP on 127.0.0.1:10025,
/// LMTP on 127.0.0.1:10024, relaying to 127.0.0.1:10026, admin endpoint on
/// 127.0.0.1:9025, with the shipped policies. Any setting can be overridden
/// with an environment variable SOTTO_<SECTION>__<KEY>, e.g.
/// SOTTO_UPSTREAM__ADDRESS=mx.example:25.
#[derive(Parser)]
#[command(name = "sotto", version, about, long_about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the configuration and the policies come from.
#[derive(Args, Clone)]
pub struct Sources {
    /// Configuration file (TOML). See sotto.example.toml for every key.
    #[arg(short, long, env = "SOTTO_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Policy directory, instead of policy.dir from the configuration.
    #[arg(long, value_name = "DIR", global = true)]
    pub policies: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway: the SMTP/LMTP listeners, the relay and the admin endpoint.
    ///
    /// Stops on SIGTERM or Ctrl-C: it stops accepting connections, lets open
    /// transactions finish (at most timeouts.shutdown), then exits 0. Policy
    /// files are reloaded when they change and on SIGHUP; a set that fails to
    /// load is refused with a log line and the previous one stays in force.
    /// Logs go to standard error; RUST_LOG overrides log.level.
    Serve {
        #[command(flatten)]
        sources: Sources,
    },
    /// Check the configuration and the policy files; report every problem as
    /// `file:line:col: what is wrong`.
    ///
    /// Every problem is reported in one run: unknown keys (with the key that
    /// was probably meant), values of the wrong type or out of range, bad
    /// durations, list items and addresses. A bad SOTTO_* variable is named
    /// with its value: `SOTTO_UPSTREAM__TLS=yes: expected one of none,
    /// starttls, tls`. Exits 0 when both are valid, 1 otherwise. Nothing is
    /// started.
    Check {
        #[command(flatten)]
        sources: Sources,
    },
    /// Explain what the policy decides for a sender and recipient: each
    /// field, its value and the rule (file:line) that decided it, and which
    /// key would be used.
    ///
    /// Looks the recipient's key up through the configured sources.
    Explain {
        #[command(flatten)]
        sources: Sources,
        /// Channel: smtp or xmpp.
        #[arg(long, default_value = "smtp", value_parser = ["smtp", "xmpp"])]
        channel: String,
        /// Sender address.
        #[arg(long, value_name = "ADDRESS")]
        from: String,
        /// Recipient address; repeat for several.
        #[arg(long, value_name = "ADDRESS", required = true)]
        to: Vec<String>,
    },
    /// Show exactly what would be relayed for a message read from standard input.
    ///
    /// Runs the same pipeline as `serve` (policy and key lookup for each
    /// recipient, then links and encryption). Recipients that get the same
    /// treatment share one message, as over LMTP; over SMTP, sotto answers
    /// the later groups `452 4.5.3` and the client sends them again.
    ///
    /// With one group, standard output is exactly the message that would be
    /// relayed (so `> out.eml` works). With several, each group is a header
    /// line, then exactly N bytes of its message:
    ///
    ///   ==> sotto would relay to RCPT, RCPT (TREATMENT), N bytes:
    ///
    /// TREATMENT reads like `encrypted; links: keep` or `readable; links:
    /// redirect`. Each refused recipient is named on standard error with
    /// sotto's reply. Exit 0 when anything would be relayed, 2 when everything
    /// is refused. LF line endings in the input are taken as CRLF.
    ///
    /// With --inbound: what the inbound path would hand the mailbox server
    /// for mail arriving for local users (decrypted for their identities,
    /// protected headers shown, the X-Sotto-Inbound record added), using
    /// the configured store; no identity is made.
    Transform {
        #[command(flatten)]
        sources: Sources,
        /// Channel the message came in on (only `smtp` for messages).
        #[arg(long, default_value = "smtp", value_parser = ["smtp"])]
        channel: String,
        /// Envelope sender.
        #[arg(long, value_name = "ADDRESS")]
        from: String,
        /// Envelope recipient; repeat for several.
        #[arg(long, value_name = "ADDRESS", required = true)]
        to: Vec<String>,
        /// The inbound path (mail arriving for local users) instead of the
        /// outgoing one.
        #[arg(long)]
        inbound: bool,
    },
    /// Run only the scanner-proof redirector that `redirect` links point to.
    ///
    /// Listens on redirect.listen. HEAD gets 200 without the destination,
    /// GET a neutral page naming only the destination's host, and only the
    /// page's POST button leads on (303). Its tokens must be sealed with the
    /// same redirect.keys as the sotto that rewrote the links. `serve` runs
    /// the redirector too; this is for running it apart (e.g. at the edge).
    Redirect {
        #[command(flatten)]
        sources: Sources,
    },
    /// Manage and inspect recipients' OpenPGP certificates.
    Keys {
        #[command(flatten)]
        sources: Sources,
        #[command(subcommand)]
        action: KeysAction,
    },
    /// The organisation's identities (identities.domains): list, show,
    /// create, export, rotate, revoke, register a user's own key.
    Identities {
        #[command(flatten)]
        sources: Sources,
        #[command(subcommand)]
        action: sotto::openpgp::identities::cli::IdentitiesAction,
    },
    /// Manage the state store (store.url): migrate, backup, restore, import.
    Store {
        #[command(flatten)]
        sources: Sources,
        #[command(subcommand)]
        action: sotto::store::cli::StoreAction,
    },
}

#[derive(Subcommand)]
pub enum KeysAction {
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
    ///
    /// The web sources are `wkd` and `vks` in keys.sources; with neither,
    /// nothing can be refreshed: it says so and exits 1.
    Refresh,
}

fn main() -> ExitCode {
    // The OpenPGP library returns errors in its normal control flow; with
    // RUST_BACKTRACE=1 each would capture a backtrace (measured: a few per
    // cent of sotto's CPU under load). Panics still get theirs.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: first thing in main, before any other thread exists.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Check { sources } => commands::check(&sources),
        Command::Serve { sources } => commands::with_config(&sources, true, commands::serve),
        Command::Explain {
            sources,
            channel,
            from,
            to,
        } => commands::with_config(&sources, false, |cfg| {
            commands::explain(cfg, channel, from, to)
        }),
        Command::Transform {
            sources,
            channel: _,
            from,
            to,
            inbound,
        } => commands::with_config(&sources, false, move |cfg| async move {
            if inbound {
                commands::transform_inbound(cfg, from, to).await
            } else {
                commands::transform(cfg, from, to).await
            }
        }),
        Command::Redirect { sources } => commands::with_config(&sources, true, commands::redirect),
        Command::Keys { sources, action } => {
            commands::with_config(&sources, false, |cfg| commands::keys(cfg, action))
        }
        Command::Identities { sources, action } => commands::with_config(&sources, false, |cfg| {
            sotto::openpgp::identities::cli::run(cfg, action)
        }),
        Command::Store { sources, action } => {
            commands::with_config(&sources, false, |cfg| sotto::store::cli::run(cfg, action))
        }
    }
}
