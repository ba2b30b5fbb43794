//! What a policy set needs from the configuration (a signing key for
//! `sign = true`, a public redirector for `links = "redirect"`), and the
//! one-line account of what it does to links that `serve` logs at start.
//! Checked by `sotto check` and before `serve` starts, so a policy never
//! asks for something the configuration cannot give.

use super::{Field, LinkMode, Origin, PolicySet, Value};
use crate::config::Config;

impl PolicySet {
    /// Every policy setting the configuration cannot honour, each as
    /// `file:line: what is wrong and what to set`.
    pub fn unmet_needs(&self, cfg: &Config) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(origin) = self.signing_origin()
            && cfg.crypt.signing_key.is_none()
        {
            out.push(format!(
                "{origin}: sign = true needs crypt.signing_key in the configuration"
            ));
        }
        if cfg.redirect.public_url.is_empty() {
            for (field, origin) in self.redirect_origins() {
                out.push(format!(
                    "{origin}: {} = \"redirect\" needs redirect.public_url, the https:// \
                     address where readers reach sotto's redirector; without it no \
                     rewritten link could open (or use links = \"redact\")",
                    field.name()
                ));
            }
        }
        out
    }

    /// Where `links` or `links_when_encrypted` is first set to `redirect`,
    /// per field that is.
    pub fn redirect_origins(&self) -> Vec<(Field, String)> {
        [Field::Links, Field::LinksWhenEncrypted]
            .into_iter()
            .filter_map(|f| {
                self.origin_of(f, &Value::Links(LinkMode::Redirect))
                    .map(|o| (f, o))
            })
            .collect()
    }

    /// What the `[defaults]` do to links, and whether rules change it, for
    /// the start-up log: `readable mail: redact (policies/00-defaults.toml:17);
    /// encrypted mail: keep (built in); 2 rule(s) set links`.
    pub fn links_summary(&self) -> String {
        let side = |field: Field| {
            let Value::Links(mode) = self.defaults.get(field) else {
                return String::from("?");
            };
            let from = match self.default_origins.get(&field) {
                Some(Origin::Defaults(l)) => l.to_string(),
                _ => "built in".to_string(),
            };
            format!("{} ({from})", mode.name())
        };
        let rules = self
            .rules
            .iter()
            .filter(|r| {
                r.set
                    .iter()
                    .any(|(f, _, _)| matches!(f, Field::Links | Field::LinksWhenEncrypted))
            })
            .count();
        format!(
            "readable mail and chat: {}; inside encryption: {}; {rules} rule(s) change links",
            side(Field::Links),
            side(Field::LinksWhenEncrypted)
        )
    }
}
