//! Loading the configuration: reads `sotto.toml`, deserializes its tree
//! collecting every value that does not fit (`tree`), layers the `SOTTO_*`
//! environment variables on top (`env`), and validates the result,
//! placing each problem at its line in the file or at its variable.

use std::path::Path;

use toml::Spanned;
use toml::de::DeTable;

use super::locate::{self, Problem};
use super::{Config, ConfigError, env, tree};

/// Prefix of environment variables that override the file; `__` separates
/// levels: `SOTTO_UPSTREAM__ADDRESS=127.0.0.1:2525`.
pub const ENV_PREFIX: &str = "SOTTO";

impl Config {
    /// Loads the file (if any), applies `SOTTO_*` overrides from `env`, and
    /// validates the result. Every problem is reported, not only the first:
    /// syntax errors of the file alone (nothing else can be read then);
    /// otherwise every unknown key and ill-typed value of the file, every
    /// variable the configuration cannot take, and every setting that
    /// fails validation.
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
        let env: Vec<(String, String)> = env.into_iter().collect();
        let (settings, env_problems) = env::read(&env);
        let doc = match (path, &text) {
            (Some(p), Some(t)) => {
                let (doc, errors) = DeTable::parse_recoverable(t);
                if !errors.is_empty() {
                    let mut problems = locate::syntax_errors(p, t, &errors);
                    problems.extend(env_problems);
                    return Err(ConfigError { problems });
                }
                doc
            }
            _ => Spanned::new(0..0, DeTable::new()),
        };
        let mut problems = Vec::new();
        let mut refused = Vec::new();
        let (file_cfg, mut doc, refusals) = tree::deserialize(doc);
        if let (Some(p), Some(t)) = (path, &text) {
            for r in &refusals {
                refused.push(tree::dotted(&r.path));
                problems.push(Problem::refused(p, t, r));
            }
        }
        problems.extend(env_problems);
        if file_cfg.is_none() {
            // What could not be placed in the file stops here.
            return Err(ConfigError { problems });
        }
        for s in &settings {
            tree::insert(doc.get_mut(), &s.path, Spanned::new(0..0, s.value.clone()));
        }
        // Each variable was taken alone; together they are taken too.
        let (cfg, _, refusals) = tree::deserialize(doc);
        problems.extend(
            refusals
                .iter()
                .map(|r| Problem::unplaced(format!("{}: {}", tree::dotted(&r.path), r.message))),
        );
        let Some(cfg) = cfg else {
            return Err(ConfigError { problems });
        };

        let set_by_env: Vec<(&str, &str, String)> = settings
            .iter()
            .map(|s| (s.name, s.text, s.path.join(".")))
            .collect();
        problems.extend(
            cfg.validate()
                .into_iter()
                // A refused value is reported once, not again for its default.
                .filter(|(key, _)| !refused.contains(key))
                .map(|(key, msg)| Problem::at_key(path, text.as_deref(), &set_by_env, &key, msg)),
        );
        // The file in order, then the variables by name, then the rest.
        problems.sort_by(|a, b| order(a).cmp(&order(b)));
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError { problems })
        }
    }
}

fn order(p: &Problem) -> (u8, (usize, usize), &str) {
    match (&p.env, p.position) {
        (None, Some(pos)) => (0, pos, ""),
        (Some(var), _) => (1, (0, 0), var.as_str()),
        (None, None) => (2, (0, 0), ""),
    }
}
