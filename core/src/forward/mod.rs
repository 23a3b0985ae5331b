//! Forwarding to the team's collector or Prometheus: how a team sees everyone's usage in its
//! own Grafana without every developer running a stack.
//!
//! * [`queue`] — the persistent side, in the history's SQLite file. The store's writer queues
//!   each accepted request (OTLP) or marks each changed series (remote write) in the same
//!   transaction that stores the data, so nothing acknowledged to Claude Code can miss the team.
//! * [`exporter`] — OTLP over gRPC or HTTP/protobuf and Prometheus remote write, TLS with
//!   rustls, and the classification of answers (deliver, retry, drop, stop for credentials).
//! * [`remote_write`] — `WriteRequest` from our exact cumulative totals.
//! * [`run`] — the [`Forwarder`]: its own thread and runtime, so a slow or unreachable peer
//!   never slows local ingest; backoff with jitter, `Retry-After`, gRPC `RetryInfo`.
//! * [`control`] — on/off, setup and status, from any process.
//! * [`identity`] — `developer`, `team` and `host.name` on everything forwarded.
//! * [`headers`] and [`secret`] — `OTEL_EXPORTER_OTLP_HEADERS`-style headers, kept in the OS
//!   keychain; they never reach the config file, a log line or an error message.

pub mod control;
pub(crate) mod exporter;
pub(crate) mod headers;
pub mod identity;
pub mod queue;
pub(crate) mod remote_write;
pub(crate) mod run;
pub mod secret;

pub use control::{ForwardStatus, Setup};
pub use headers::Headers;
pub use run::Forwarder;

use crate::store::StoreError;

/// Why forwarding could not be set up or its settings changed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The forwarding headers (`OTEL_EXPORTER_OTLP_HEADERS` syntax) do not parse or are not
    /// allowed.
    #[error("invalid headers: {0}")]
    Headers(String),
    /// The OS keychain or a secret file holding the headers could not be read or written.
    #[error("{0}")]
    Keychain(String),
    /// The `[forward]` settings are unusable: no or a bad endpoint, an unreadable CA file, a TLS
    /// setup failure.
    #[error("{0}")]
    Config(String),
    /// The store (queue, forwarding state) failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The forwarder's thread or runtime could not be started.
    #[error("cannot start the forwarder: {0}")]
    Start(String),
}
