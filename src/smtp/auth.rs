//! AUTH PLAIN and LOGIN for smarthost use, against the accounts in
//! `[[smtp.auth.users]]`. Offered only over TLS unless the configuration
//! explicitly allows plaintext.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use smtp_proto::{AUTH_LOGIN, AUTH_PLAIN};

use super::Session;
use super::session::Stop;
use crate::relay::Target;
use crate::reply::Reply;

impl<T: Target> Session<T> {
    pub(super) fn auth_offered(&self) -> bool {
        !self.shared.users.is_empty() && (self.tls || self.shared.auth_plaintext)
    }

    pub(super) async fn auth(&mut self, mechanism: u64, initial: String) -> Result<(), Stop> {
        if self.shared.users.is_empty() {
            self.error(Reply::new(502, "5.5.1", "AUTH is not offered"));
            return Ok(());
        }
        if !self.auth_offered() {
            self.error(Reply::new(
                538,
                "5.7.11",
                "Encryption required: issue STARTTLS first",
            ));
            return Ok(());
        }
        if self.user.is_some() || self.tx.is_some() {
            self.error(Reply::new(503, "5.5.1", "AUTH not allowed now"));
            return Ok(());
        }
        let creds = if mechanism == AUTH_PLAIN {
            let response = match initial.as_str() {
                "" => self.challenge("").await?,
                _ => Some(initial),
            };
            response.and_then(|r| decode(&r)).and_then(|raw| {
                let mut parts = raw.split(|&b| b == 0);
                let (_authz, user, pass) = (parts.next()?, parts.next()?, parts.next()?);
                Some((String::from_utf8(user.to_vec()).ok()?, pass.to_vec()))
            })
        } else if mechanism == AUTH_LOGIN {
            let user = match initial.as_str() {
                "" => self.challenge("VXNlcm5hbWU6").await?,
                _ => Some(initial),
            };
            let user = user
                .and_then(|u| decode(&u))
                .and_then(|u| String::from_utf8(u).ok());
            match user {
                Some(user) => self
                    .challenge("UGFzc3dvcmQ6")
                    .await?
                    .and_then(|p| decode(&p))
                    .map(|p| (user, p)),
                None => None,
            }
        } else {
            self.error(Reply::new(
                504,
                "5.5.4",
                "Unrecognized authentication type; use PLAIN or LOGIN",
            ));
            return Ok(());
        };
        let Some((user, pass)) = creds else {
            self.error(Reply::new(
                501,
                "5.5.2",
                "Cannot decode the authentication response",
            ));
            return Ok(());
        };
        let ok = self
            .shared
            .users
            .iter()
            .any(|u| u.name == user && constant_time_eq(u.password.as_bytes(), &pass));
        if ok {
            tracing::info!(event = "auth", result = "ok");
            self.user = Some(user);
            self.reply(Reply::new(235, "2.7.0", "Authentication successful"));
        } else {
            tracing::warn!(event = "auth", result = "failed");
            self.error(Reply::new(
                535,
                "5.7.8",
                "Authentication credentials invalid",
            ));
        }
        Ok(())
    }

    /// Sends `334 prompt` and reads the answer; `None` when the client
    /// cancelled with `*`.
    async fn challenge(&mut self, prompt: &str) -> Result<Option<String>, Stop> {
        self.wbuf
            .extend_from_slice(format!("334 {prompt}\r\n").as_bytes());
        let line = self.next_line().await?;
        let text = String::from_utf8_lossy(&line[..line.len() - 2])
            .trim()
            .to_string();
        Ok((text != "*").then_some(text))
    }
}

fn decode(s: &str) -> Option<Vec<u8>> {
    B64.decode(s.trim()).ok()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
