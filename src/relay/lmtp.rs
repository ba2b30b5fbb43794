//! The mailbox server's LMTP (RFC 2033; Dovecot's `lmtp` service) as a
//! delivery target for the inbound path: one connection per transaction,
//! LHLO, MAIL, one RCPT per recipient (the server says there whether the
//! mailbox exists), DATA with one reply per accepted recipient. Every reply
//! the client sees is the server's own, or `451 4.4.x` when it could not
//! be reached, went away or did not answer in time.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::{Target, Transaction};
use crate::envelope::MailFrom;
use crate::reply::Reply;

/// Where the mailbox server's LMTP is and how long to wait for it.
#[derive(Debug, Clone)]
pub struct Lmtp {
    pub address: String,
    /// The name sotto gives in LHLO.
    pub hostname: String,
    /// Bound on connecting and on each reply but the one after DATA.
    pub command_timeout: Duration,
    /// Bound on the replies after DATA (delivery into the mailboxes).
    pub data_timeout: Duration,
}

/// Longest reply line accepted from the server.
const MAX_LINE: usize = 4096;
/// Most lines in one reply.
const MAX_LINES: usize = 64;

fn unreachable(what: &str) -> Reply {
    Reply::new(
        451,
        "4.4.1",
        format!("The mailbox server could not be reached ({what}); try again later"),
    )
}

fn went_away(what: &str) -> Reply {
    Reply::new(
        451,
        "4.4.2",
        format!("The mailbox server stopped answering ({what}); try again later"),
    )
}

/// One connection to the server, in a transaction.
pub struct LmtpTx {
    stream: BufReader<TcpStream>,
    settings: Lmtp,
    /// Recipients the server accepted.
    accepted: usize,
}

impl Target for Lmtp {
    type Tx = LmtpTx;

    async fn begin(&self, from: &MailFrom) -> Result<LmtpTx, Reply> {
        let tcp = timeout(self.command_timeout, TcpStream::connect(&self.address))
            .await
            .map_err(|_| unreachable("connect timed out"))?
            .map_err(|e| unreachable(&e.kind().to_string()))?;
        let _ = tcp.set_nodelay(true);
        let mut tx = LmtpTx {
            stream: BufReader::new(tcp),
            settings: self.clone(),
            accepted: 0,
        };
        let greeting = tx.reply(self.command_timeout).await?;
        if greeting.code != 220 {
            return Err(Reply::new(
                451,
                "4.4.1",
                "The mailbox server refused the connection; try again later",
            ));
        }
        let lhlo = tx.command(&format!("LHLO {}\r\n", self.hostname)).await?;
        if !lhlo.is_positive() {
            return Err(lhlo);
        }
        let mut mail = format!("MAIL FROM:<{}>", from.address);
        if from.body_8bit {
            mail.push_str(" BODY=8BITMIME");
        }
        if from.smtputf8 {
            mail.push_str(" SMTPUTF8");
        }
        mail.push_str("\r\n");
        let reply = tx.command(&mail).await?;
        if reply.is_positive() {
            Ok(tx)
        } else {
            Err(reply)
        }
    }
}

impl LmtpTx {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), Reply> {
        timeout(
            self.settings.command_timeout,
            self.stream.get_mut().write_all(bytes),
        )
        .await
        .map_err(|_| went_away("write timed out"))?
        .map_err(|e| went_away(&e.kind().to_string()))
    }

    async fn command(&mut self, line: &str) -> Result<Reply, Reply> {
        self.write(line.as_bytes()).await?;
        self.reply(self.settings.command_timeout).await
    }

    /// Reads one (multi-line) reply within `bound`.
    async fn reply(&mut self, bound: Duration) -> Result<Reply, Reply> {
        let mut lines: Vec<String> = Vec::new();
        let read = async {
            loop {
                let mut line = Vec::new();
                let n = (&mut self.stream)
                    .take(MAX_LINE as u64)
                    .read_until(b'\n', &mut line)
                    .await
                    .map_err(|e| went_away(&e.kind().to_string()))?;
                if n == 0 {
                    return Err(went_away("connection closed"));
                }
                if !line.ends_with(b"\n") {
                    return Err(went_away("reply line too long"));
                }
                let text = String::from_utf8_lossy(&line).trim_end().to_string();
                let code = text.get(..3).and_then(|c| c.parse::<u16>().ok());
                let (Some(code), sep) = (code, text.as_bytes().get(3).copied()) else {
                    return Err(went_away("malformed reply"));
                };
                lines.push(text.get(4..).unwrap_or_default().to_string());
                if sep != Some(b'-') {
                    return Ok(code);
                }
                if lines.len() >= MAX_LINES {
                    return Err(went_away("reply too long"));
                }
            }
        };
        let code = timeout(bound, read)
            .await
            .map_err(|_| went_away("reply timed out"))??;
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        Ok(Reply::from_peer(code, &refs, ""))
    }

    async fn data(mut self, message: Vec<u8>) -> Result<Vec<Reply>, Reply> {
        let go = self.command("DATA\r\n").await?;
        if go.code != 354 {
            return Err(go);
        }
        let wire = dot_stuffed(&message);
        timeout(
            self.settings.data_timeout,
            self.stream.get_mut().write_all(&wire),
        )
        .await
        .map_err(|_| went_away("write timed out"))?
        .map_err(|e| went_away(&e.kind().to_string()))?;
        let mut replies = Vec::with_capacity(self.accepted);
        for _ in 0..self.accepted {
            replies.push(self.reply(self.settings.data_timeout).await?);
        }
        let _ = self.write(b"QUIT\r\n").await;
        Ok(replies)
    }
}

impl Transaction for LmtpTx {
    async fn add_rcpt(&mut self, rcpt: &str) -> Reply {
        match self.command(&format!("RCPT TO:<{rcpt}>\r\n")).await {
            Ok(reply) => {
                if reply.is_positive() {
                    self.accepted += 1;
                }
                reply
            }
            Err(reply) => reply,
        }
    }

    async fn commit(self, message: Vec<u8>) -> Reply {
        let n = self.accepted;
        let replies = self.commit_each(message, n).await;
        Reply::combined(&replies, went_away("no reply"))
    }

    async fn commit_each(self, message: Vec<u8>, rcpts: usize) -> Vec<Reply> {
        match self.data(message).await {
            Ok(replies) if replies.len() == rcpts => replies,
            Ok(replies) => {
                let fill = went_away("fewer replies than recipients");
                let mut out = replies;
                out.resize(rcpts, fill);
                out
            }
            Err(reply) => vec![reply; rcpts],
        }
    }

    async fn abort(mut self) {
        let _ = self.command("RSET\r\n").await;
        let _ = self.write(b"QUIT\r\n").await;
    }
}

/// `message` on the wire: a dot doubled at the start of every line, CRLF
/// at the end if missing, then the terminating `.` line.
fn dot_stuffed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let mut at_line_start = true;
    for &b in message {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn dots_are_stuffed_and_the_end_marked() {
        assert_eq!(
            super::dot_stuffed(b".a\r\nb\r\n..c\r\n.\r\n"),
            b"..a\r\nb\r\n...c\r\n..\r\n.\r\n"
        );
        assert_eq!(super::dot_stuffed(b"x"), b"x\r\n.\r\n");
    }
}
