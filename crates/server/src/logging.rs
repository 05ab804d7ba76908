//! The log: one line per event on stderr, as text for people (the default) or as one JSON
//! object per line for log shippers (`--log-format json` / `TESSERA_LOG_FORMAT=json`),
//! filtered by `TESSERA_LOG` (`tracing` filter syntax, default `info`).
//!
//! Every line logged while a request is handled carries its request id: the router wraps each
//! request in a `request` span ([`request_span`]) holding the id that tower-http's request-id
//! layer assigned (the client's `X-Request-ID`, or a fresh UUID), which every event inside
//! inherits. Work a request hands to another task must carry the span along
//! (`tracing::Instrument::in_current_span`), or its lines lose the id.

use axum::http::Request;
use tracing::Span;
use tracing_subscriber::EnvFilter;

/// The header that carries the request id, in requests and responses.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `2026-12-01T14:08:10.766796Z  INFO request{request_id=...}: target: message key=value`.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields` (the message and
    /// the event's values), `span` (the innermost span, with `request_id` inside a request)
    /// and `spans` (every enclosing span, outermost first).
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    /// `text` or `json`. Anything else is refused at start-up, naming both ways to set it (a
    /// typo in an environment variable must not silently give the other format).
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format '{other}' (--log-format / TESSERA_LOG_FORMAT): use text or json"
            )),
        }
    }
}

/// Installs the process's log subscriber. Called once, at start-up, before anything logs.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("TESSERA_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // tracing-subscriber's own JSON formatter: escaping and field types are its job.
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}

/// The span around one request: its id, method and path (never the query string, which can
/// carry codes and emails). At INFO, so that it exists whenever INFO events do.
pub fn request_span<B>(req: &Request<B>) -> Span {
    let request_id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.uri().path(),
    )
}
