//! Loading the configuration: reads `sotto.toml`, checks its syntax with
//! exact positions, layers the `SOTTO_*` environment overrides on top,
//! deserializes the result into [`Config`], and places each problem
//! [`Config::validate`] finds at its line in the file or at its variable.

use std::path::Path;

use super::locate::{self, Problem};
use super::{Config, ConfigError};

/// Prefix of environment variables that override the file; `__` separates
/// levels: `SOTTO_UPSTREAM__ADDRESS=127.0.0.1:2525`.
pub const ENV_PREFIX: &str = "SOTTO";

impl Config {
    /// Loads the file (if any), applies `SOTTO_*` overrides from `env`, and
    /// validates the result. Every problem is reported, not only the first.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let text = match path {
            Some(p) => Some(std::fs::read_to_string(p).map_err(|e| ConfigError {
                problems: vec![Problem::whole(p, format!("cannot read: {e}"))],
            })?),
            None => None,
        };
        let file = path.map(Path::to_path_buf);
        if let (Some(p), Some(t)) = (path, &text) {
            // Syntax and type errors with their exact position, before the
            // config crate (which loses positions) sees the file.
            let problems = locate::check_file(p, t);
            if !problems.is_empty() {
                return Err(ConfigError { problems });
            }
        }
        let env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}_")))
            .collect();
        let env_keys: Vec<String> = env.iter().map(|(k, _)| k.clone()).collect();
        let mut builder = config::Config::builder();
        if let Some(t) = &text {
            builder = builder.add_source(config::File::from_str(t, config::FileFormat::Toml));
        }
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("keys.sources")
                .source(Some(env.into_iter().collect())),
        );
        let cfg: Config = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError {
                problems: vec![Problem::env_or_file(file.as_deref(), format!("{e}"))],
            })?;
        let mut problems: Vec<Problem> = cfg
            .validate()
            .into_iter()
            .map(|(key, msg)| {
                Problem::at_key(file.as_deref(), text.as_deref(), &env_keys, &key, msg)
            })
            .collect();
        // In file order; problems without a place (environment) come last.
        problems.sort_by_key(|p| p.position.unwrap_or((usize::MAX, 0)));
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError { problems })
        }
    }
}
