//! sotto's connection to the provider's IMAP server: plain on loopback,
//! implicit TLS, or STARTTLS, each verified and bounded in time.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::proxy::{ImapShared, Io};

/// The connection to the server: plain (loopback), implicit TLS, or
/// STARTTLS, each with a 30 s deadline.
pub async fn connect_upstream(shared: &ImapShared) -> Result<Io, String> {
    let limit = Duration::from_secs(30);
    let tcp = tokio::time::timeout(limit, TcpStream::connect(&shared.upstream))
        .await
        .map_err(|_| "upstream: connect timed out".to_string())?
        .map_err(|e| format!("upstream: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let Some(tls) = &shared.upstream_tls else {
        return Ok(Box::new(tcp));
    };
    let tcp = if shared.upstream_starttls {
        tokio::time::timeout(limit, starttls(tcp))
            .await
            .map_err(|_| "upstream: STARTTLS timed out".to_string())??
    } else {
        tcp
    };
    let secured = tokio::time::timeout(limit, tls.handshake(tcp))
        .await
        .map_err(|_| "upstream: TLS handshake timed out".to_string())?
        .map_err(|e| format!("upstream TLS: {e}"))?;
    Ok(Box::new(secured))
}

/// STARTTLS on a fresh connection to the server: its greeting, then
/// `STARTTLS` and its OK. Nothing the server sends after the OK and before
/// the handshake is accepted (it would be taken as protected later).
async fn starttls(tcp: TcpStream) -> Result<TcpStream, String> {
    use tokio::io::AsyncBufReadExt as _;
    let mut r = tokio::io::BufReader::new(tcp);
    let mut line = Vec::new();
    let read = async |r: &mut tokio::io::BufReader<TcpStream>, line: &mut Vec<u8>| {
        line.clear();
        let n = (&mut *r)
            .take(8192)
            .read_until(b'\n', line)
            .await
            .map_err(|e| format!("upstream: {e}"))?;
        if n == 0 || !line.ends_with(b"\n") {
            return Err("upstream: closed or sent an overlong line before TLS".to_string());
        }
        Ok::<(), String>(())
    };
    read(&mut r, &mut line).await?;
    if !line.starts_with(b"* OK") {
        return Err("upstream: no OK greeting, so no STARTTLS".into());
    }
    r.get_mut()
        .write_all(b"S0 STARTTLS\r\n")
        .await
        .map_err(|e| format!("upstream: {e}"))?;
    for _ in 0..64 {
        read(&mut r, &mut line).await?;
        if line.starts_with(b"S0 OK") {
            if !r.buffer().is_empty() {
                return Err("upstream: bytes after STARTTLS's OK, before TLS".into());
            }
            return Ok(r.into_inner());
        }
        if line.starts_with(b"S0 ") {
            return Err("upstream: the server refused STARTTLS".into());
        }
    }
    Err("upstream: no answer to STARTTLS".into())
}
