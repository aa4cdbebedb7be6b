//! A minimal HTTP/1.0 GET for the brokers' monitoring endpoints on the run's private network.
//!
//! Probes poll several nodes every 100 ms and must never hang on a frozen node, so every call
//! is bounded by a timeout and opens a fresh connection (a paused node's half-open connection
//! must not be reused).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("no answer from {0} within {1:?}")]
    Timeout(SocketAddr, Duration),
    #[error("cannot reach {0}: {1}")]
    Io(SocketAddr, std::io::Error),
    #[error("malformed answer from {0}")]
    Malformed(SocketAddr),
}

/// Fetches `path` from `addr`; returns the status code and body.
pub async fn get(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), HttpError> {
    get_as(addr, path, None, timeout).await
}

/// A user and password sent with HTTP basic authentication.
pub type BasicAuth<'a> = Option<(&'a str, &'a str)>;

/// Like [`get`], with HTTP basic authentication when `auth` is given.
pub async fn get_as(
    addr: SocketAddr,
    path: &str,
    auth: BasicAuth<'_>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), HttpError> {
    request("GET", addr, path, auth, None, timeout).await
}

/// Posts a JSON body to `path`; returns the status code and body.
pub async fn post_json(
    addr: SocketAddr,
    path: &str,
    body: &serde_json::Value,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), HttpError> {
    request("POST", addr, path, None, Some(body.to_string()), timeout).await
}

async fn request(
    method: &str,
    addr: SocketAddr,
    path: &str,
    auth: BasicAuth<'_>,
    body: Option<String>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), HttpError> {
    let content = body
        .map(|b| {
            format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            )
        })
        .unwrap_or_else(|| "\r\n".into());
    let authorization = auth
        .map(|(user, password)| {
            format!(
                "Authorization: Basic {}\r\n",
                base64(format!("{user}:{password}").as_bytes())
            )
        })
        .unwrap_or_default();
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(
                format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{authorization}{content}")
                    .as_bytes(),
            )
            .await?;
        let mut buf = Vec::with_capacity(16 * 1024);
        stream.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| HttpError::Timeout(addr, timeout))?
        .map_err(|e| HttpError::Io(addr, e))?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(HttpError::Malformed(addr))?;
    let head = std::str::from_utf8(&buf[..split]).map_err(|_| HttpError::Malformed(addr))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(HttpError::Malformed(addr))?;
    Ok((status, buf[split + 4..].to_vec()))
}

/// Fetches and parses a JSON body; non-2xx answers are errors.
pub async fn get_json(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<serde_json::Value, String> {
    get_json_as(addr, path, None, timeout).await
}

/// Like [`get_json`], with HTTP basic authentication when `auth` is given.
pub async fn get_json_as(
    addr: SocketAddr,
    path: &str,
    auth: BasicAuth<'_>,
    timeout: Duration,
) -> Result<serde_json::Value, String> {
    let (status, body) = get_as(addr, path, auth, timeout)
        .await
        .map_err(|e| e.to_string())?;
    if !(200..300).contains(&status) {
        return Err(format!(
            "{addr}{path} answered {status}: {}",
            String::from_utf8_lossy(&body).trim()
        ));
    }
    serde_json::from_slice(&body).map_err(|e| format!("{addr}{path}: invalid JSON: {e}"))
}

/// Standard base64 with padding (RFC 4648), for the basic authentication header.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_as_rfc_4648_gives_it() {
        assert_eq!(super::base64(b"guest:guest"), "Z3Vlc3Q6Z3Vlc3Q=");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foo"), "Zm9v");
        assert_eq!(super::base64(b""), "");
    }

    use super::*;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn reads_status_and_body() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = [0u8; 256];
            let _ = s.read(&mut req).await.unwrap();
            s.write_all(b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n\r\n{\"status\":\"unavailable\"}")
                .await
                .unwrap();
        });
        let (status, body) = get(addr, "/healthz", Duration::from_secs(2)).await.unwrap();
        assert_eq!(status, 503);
        assert_eq!(body, b"{\"status\":\"unavailable\"}");
        assert!(get_json(addr, "/healthz", Duration::from_millis(200))
            .await
            .is_err());
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _keep = tokio::spawn(async move {
            let (_s, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let err = get(addr, "/", Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(matches!(err, HttpError::Timeout(..)), "{err}");
    }
}
