//! One keep-alive HTTP/1.1 connection to the server under test.
//!
//! Every load task owns one [`Conn`] and sends its requests one after another on it, so the
//! number of tasks is the number of concurrent connections. Two implementations: a bare hyper
//! client connection (the default: no pool, no URL parsing, the least CPU per request, which
//! matters when the bench and the server share two cores) and reqwest (one client per
//! connection), kept to compare load-generator overhead.

use std::net::SocketAddr;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;

const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Which HTTP client the load tasks use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ClientKind {
    Hyper,
    Reqwest,
}

/// Where the server is and how to authenticate to it.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub addr: SocketAddr,
    pub api_key: String,
    pub kind: ClientKind,
    /// Put a fresh `Idempotency-Key` on every POST (`--idempotency-keys`).
    pub idempotency_keys: bool,
}

/// A key never sent before by this process, shaped like the UUIDs the SDKs send (the bench
/// always runs on a fresh database, so a counter is unique enough).
fn fresh_idempotency_key() -> HeaderValue {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let key = format!("{:08x}-0000-4000-8000-{n:012x}", std::process::id());
    HeaderValue::from_str(&key).unwrap_or_else(|_| HeaderValue::from_static("bench"))
}

/// A response: status and the whole body.
pub(crate) struct Response {
    pub status: u16,
    pub body: Bytes,
}

impl Response {
    pub(crate) fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "status {} with a body that is not JSON: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as JSON when the status is `want`, an error naming both otherwise.
    pub(crate) fn expect(self, want: u16) -> anyhow::Result<serde_json::Value> {
        if self.status != want {
            bail!(
                "expected {want}, got {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            );
        }
        self.json()
    }
}

enum Inner {
    /// `None` until connected, and again after an error (the next request reconnects).
    Hyper(Option<SendRequest<Full<Bytes>>>),
    Reqwest(reqwest::Client),
}

pub(crate) struct Conn {
    inner: Inner,
    addr: SocketAddr,
    host: HeaderValue,
    auth: HeaderValue,
    base: String,
    idempotency_keys: bool,
}

async fn handshake(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

impl Conn {
    /// Opens the connection now (hyper) so that connecting is not part of a measured run.
    pub(crate) async fn connect(target: &Target) -> anyhow::Result<Conn> {
        let inner = match target.kind {
            ClientKind::Hyper => Inner::Hyper(Some(handshake(target.addr).await?)),
            ClientKind::Reqwest => Inner::Reqwest(
                reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .tcp_nodelay(true)
                    .build()?,
            ),
        };
        Ok(Conn {
            inner,
            addr: target.addr,
            host: HeaderValue::from_str(&target.addr.to_string())?,
            auth: HeaderValue::from_str(&format!("Bearer {}", target.api_key))?,
            base: format!("http://{}", target.addr),
            idempotency_keys: target.idempotency_keys,
        })
    }

    pub(crate) async fn get(&mut self, path: &str) -> anyhow::Result<Response> {
        self.send(Method::GET, path, None).await
    }

    pub(crate) async fn post(&mut self, path: &str, body: Bytes) -> anyhow::Result<Response> {
        self.send(Method::POST, path, Some(body)).await
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> anyhow::Result<Response> {
        let idempotency_key =
            (self.idempotency_keys && method == Method::POST).then(fresh_idempotency_key);
        match &mut self.inner {
            Inner::Hyper(slot) => {
                let headers = RequestHeaders {
                    host: &self.host,
                    auth: &self.auth,
                    idempotency_key,
                };
                let r = hyper_send(slot, self.addr, headers, method, path, body).await;
                if r.is_err() {
                    *slot = None;
                }
                r
            }
            Inner::Reqwest(client) => {
                let mut req = client
                    .request(method, format!("{}{path}", self.base))
                    .header(AUTHORIZATION, self.auth.clone());
                if let Some(k) = idempotency_key {
                    req = req.header(IDEMPOTENCY_KEY, k);
                }
                if let Some(b) = body {
                    req = req
                        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                        .body(b);
                }
                let resp = req.send().await?;
                let status = resp.status().as_u16();
                let body = resp.bytes().await?;
                Ok(Response { status, body })
            }
        }
    }
}

/// The headers every request carries, and the optional `Idempotency-Key`.
struct RequestHeaders<'a> {
    host: &'a HeaderValue,
    auth: &'a HeaderValue,
    idempotency_key: Option<HeaderValue>,
}

async fn hyper_send(
    slot: &mut Option<SendRequest<Full<Bytes>>>,
    addr: SocketAddr,
    headers: RequestHeaders<'_>,
    method: Method,
    path: &str,
    body: Option<Bytes>,
) -> anyhow::Result<Response> {
    let reconnect = match slot {
        Some(s) => s.is_closed(),
        None => true,
    };
    if reconnect {
        *slot = Some(handshake(addr).await?);
    }
    let Some(sender) = slot.as_mut() else {
        bail!("not connected");
    };
    sender.ready().await?;
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, headers.host.clone())
        .header(AUTHORIZATION, headers.auth.clone());
    if let Some(k) = headers.idempotency_key {
        req = req.header(IDEMPOTENCY_KEY, k);
    }
    if body.is_some() {
        req = req.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    let req = req.body(Full::new(body.unwrap_or_default()))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(Response { status, body })
}
