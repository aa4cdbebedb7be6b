//! HTTP for the brokers' monitoring and admin endpoints on the run's private network, through
//! hyper's HTTP/1 client.
//!
//! Probes poll several nodes every 100 ms and must never hang on a frozen node, so every call
//! is bounded by a timeout and opens a fresh connection (a paused node's half-open connection
//! must not be reused).

use std::net::SocketAddr;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("no answer from {0} within {1:?}")]
    Timeout(SocketAddr, Duration),
    #[error("cannot reach {0}: {1}")]
    Io(SocketAddr, std::io::Error),
    #[error("malformed answer from {0}: {1}")]
    Malformed(SocketAddr, String),
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
    let malformed = |e: &dyn std::fmt::Display| HttpError::Malformed(addr, e.to_string());
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, addr.to_string())
        .header(CONNECTION, "close");
    if let Some((user, password)) = auth {
        let token = BASE64.encode(format!("{user}:{password}"));
        builder = builder.header(AUTHORIZATION, format!("Basic {token}"));
    }
    let request = match body {
        Some(b) => builder
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(b))),
        None => builder.body(Full::new(Bytes::new())),
    }
    .map_err(|e| malformed(&e))?;
    let exchange = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| HttpError::Io(addr, e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| malformed(&e))?;
        // The connection is driven by a task of its own, ended with the exchange (a node that
        // keeps it open must not keep the task alive).
        let driver = AbortOnDrop(tokio::spawn(async move {
            let _ = connection.await;
        }));
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| malformed(&e))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| malformed(&e))?
            .to_bytes();
        drop(driver);
        Ok((status, body.to_vec()))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| HttpError::Timeout(addr, timeout))?
}

/// Aborts the task when dropped: on success, on error and on timeout alike.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn basic_authentication_and_a_json_body_reach_the_server() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = vec![0u8; 4096];
            let n = s.read(&mut req).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                .await
                .unwrap();
            String::from_utf8_lossy(&req[..n]).to_string()
        });
        let json = get_json_as(
            addr,
            "/api/nodes",
            Some(("guest", "guest")),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
        assert_eq!(json, serde_json::json!({}));
        let request = server.await.unwrap().to_lowercase();
        assert!(
            request.starts_with("get /api/nodes http/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains("authorization: basic z3vlc3q6z3vlc3q=\r\n"),
            "{request}"
        );
    }

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
