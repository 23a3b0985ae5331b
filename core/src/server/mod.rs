//! Running the engine: bind the three listeners first (so a taken port fails fast and port 0
//! works for tests), then serve until shutdown.

pub(crate) mod connections;
pub(crate) mod dashboard_endpoint;
pub(crate) mod import_endpoint;
pub(crate) mod metrics_endpoint;
pub(crate) mod push_endpoint;
pub(crate) mod scrape_auth;

use std::future::Future;
use std::net::{SocketAddr, TcpListener};

use tokio::sync::watch;

use crate::config::{Config, Listen};
use crate::receiver::{grpc, http, Receiver};
use crate::store::Store;

/// How long, after the stop signal, the servers may take to finish their connections. The
/// graceful shutdown of HTTP/2 waits for the peer to answer its GOAWAY ping: a client that never
/// reads (hung, suspended, or hostile) held a SIGTERM'd `serve` until the idle timeout (120 s by
/// default, beyond systemd's 90 s stop timeout). Acknowledged data is committed already; what
/// is cut short was never acknowledged, so its client retries.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Why the engine could not bind its listeners or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A configured listen address does not parse as `HOST:PORT`.
    #[error("{what} address '{addr}' is not a valid HOST:PORT ({reason}); set it with {flag} or [listen] {key} in the config")]
    BadAddress {
        /// Which listener: `OTLP/gRPC`, `OTLP/HTTP` or `Prometheus /metrics`.
        what: &'static str,
        /// The address as configured.
        addr: String,
        /// The parser's error message.
        reason: String,
        /// The command-line flag that sets it, e.g. `--otlp-grpc`.
        flag: &'static str,
        /// The `[listen]` key in the config file that sets it, e.g. `otlp_grpc`.
        key: &'static str,
    },
    /// Binding failed because another socket already holds the address.
    #[error("port {port} ({what}, {addr}) is already in use{by}; stop the other program or choose another port with {flag} (or [listen] {key} in the config, or {env})")]
    PortInUse {
        /// Which listener: `OTLP/gRPC`, `OTLP/HTTP` or `Prometheus /metrics`.
        what: &'static str,
        /// The address that could not be bound.
        addr: SocketAddr,
        /// The port of `addr`.
        port: u16,
        /// Text naming the holder of the port, appended to the message as is; empty when
        /// unknown (binding itself leaves it empty).
        by: String,
        /// The command-line flag that sets the address, e.g. `--otlp-grpc`.
        flag: &'static str,
        /// The `[listen]` key in the config file that sets the address.
        key: &'static str,
        /// The environment variable that sets the address, e.g. `TOKENTRAY_OTLP_GRPC`.
        env: &'static str,
    },
    /// Binding failed for another reason (permissions, no such interface), or the socket could
    /// not be made non-blocking.
    #[error("cannot listen on {addr} for {what}: {reason}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address that could not be bound.
        addr: SocketAddr,
        /// The OS error message.
        reason: String,
    },
    /// A `[receiver] require_headers` or `[metrics] require_header` secret cannot be resolved.
    #[error(transparent)]
    Auth(#[from] crate::receiver::auth::AuthError),
    /// A server failed after binding: handing a listener to Tokio, serving, or its task
    /// panicked.
    #[error("{what} server failed: {reason}")]
    Serve {
        /// Which server (or `server task` for a task that panicked or was cancelled).
        what: &'static str,
        /// The underlying error message.
        reason: String,
    },
}

/// The three bound sockets.
pub struct Listeners {
    /// The OTLP/gRPC receiver's socket (non-blocking).
    pub otlp_grpc: TcpListener,
    /// The OTLP/HTTP receiver's socket (non-blocking).
    pub otlp_http: TcpListener,
    /// The socket serving Prometheus `/metrics` and the dashboard (non-blocking).
    pub metrics: TcpListener,
}

/// Addresses actually bound (port 0 resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundAddrs {
    /// Where the OTLP/gRPC receiver listens.
    pub otlp_grpc: SocketAddr,
    /// Where the OTLP/HTTP receiver listens.
    pub otlp_http: SocketAddr,
    /// Where `/metrics` and the dashboard are served.
    pub metrics: SocketAddr,
}

impl std::fmt::Display for BoundAddrs {
    /// The line scripts parse:
    /// `listening otlp-grpc=HOST:PORT otlp-http=HOST:PORT metrics=HOST:PORT`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "listening otlp-grpc={} otlp-http={} metrics={}",
            self.otlp_grpc, self.otlp_http, self.metrics
        )
    }
}

struct Spec {
    what: &'static str,
    flag: &'static str,
    key: &'static str,
    env: &'static str,
}

const GRPC: Spec =
    Spec { what: "OTLP/gRPC", flag: "--otlp-grpc", key: "otlp_grpc", env: "TOKENTRAY_OTLP_GRPC" };
const HTTP: Spec =
    Spec { what: "OTLP/HTTP", flag: "--otlp-http", key: "otlp_http", env: "TOKENTRAY_OTLP_HTTP" };
const METRICS: Spec = Spec {
    what: "Prometheus /metrics",
    flag: "--metrics",
    key: "metrics",
    env: "TOKENTRAY_METRICS",
};

fn bind_one(addr: &str, spec: &Spec) -> Result<TcpListener, ServerError> {
    let parsed: SocketAddr =
        addr.parse().map_err(|e: std::net::AddrParseError| ServerError::BadAddress {
            what: spec.what,
            addr: addr.to_string(),
            reason: e.to_string(),
            flag: spec.flag,
            key: spec.key,
        })?;
    let listener = TcpListener::bind(parsed).map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => ServerError::PortInUse {
            what: spec.what,
            addr: parsed,
            port: parsed.port(),
            by: String::new(),
            flag: spec.flag,
            key: spec.key,
            env: spec.env,
        },
        _ => ServerError::Bind { what: spec.what, addr: parsed, reason: e.to_string() },
    })?;
    listener.set_nonblocking(true).map_err(|e| ServerError::Bind {
        what: spec.what,
        addr: parsed,
        reason: e.to_string(),
    })?;
    Ok(listener)
}

impl Listeners {
    /// Binds all three or none. Raises the open-file limit first: each connection is a
    /// descriptor, and the engine is what binds.
    pub fn bind(listen: &Listen) -> Result<Listeners, ServerError> {
        match connections::raise_fd_limit() {
            Ok((before, now)) if now > before => {
                tracing::debug!(before, now, "raised the open-file limit to its hard limit")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
        }
        Ok(Listeners {
            otlp_grpc: bind_one(&listen.otlp_grpc, &GRPC)?,
            otlp_http: bind_one(&listen.otlp_http, &HTTP)?,
            metrics: bind_one(&listen.metrics, &METRICS)?,
        })
    }

    /// The local addresses of the three sockets, with any port 0 resolved to the one the OS
    /// chose.
    pub fn addrs(&self) -> std::io::Result<BoundAddrs> {
        Ok(BoundAddrs {
            otlp_grpc: self.otlp_grpc.local_addr()?,
            otlp_http: self.otlp_http.local_addr()?,
            metrics: self.metrics.local_addr()?,
        })
    }
}

fn to_tokio(l: TcpListener, what: &'static str) -> Result<tokio::net::TcpListener, ServerError> {
    tokio::net::TcpListener::from_std(l)
        .map_err(|e| ServerError::Serve { what, reason: e.to_string() })
}

/// Serves OTLP/gRPC, OTLP/HTTP and `/metrics` on bound listeners until `shutdown` resolves, then
/// drains in-flight requests and lets the store finish its queue. Must run inside a Tokio runtime.
pub async fn run(
    listeners: Listeners,
    store: Store,
    config: &Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let required = crate::receiver::auth::resolve_all(&config.receiver.require_headers)?;
    let scrape_auth = scrape_auth::ScrapeAuth::resolve(config.metrics.require_header.as_deref())?;
    let receiver = Receiver::new(store.clone(), config).require_headers(required);
    // Pushed groups (Pushgateway API) on a connection of their own, opened before any listener
    // serves so that a failure here leaves nothing running.
    let pushed = std::sync::Arc::new(
        crate::store::pushgateway::PushGroups::open(store.path())
            .map_err(|e| ServerError::Serve { what: METRICS.what, reason: e.to_string() })?,
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    // The dashboard's setup instructions name the ports actually bound.
    let addrs = listeners
        .addrs()
        .map_err(|e| ServerError::Serve { what: METRICS.what, reason: e.to_string() })?;
    let limits = connections::ConnectionLimits::of(&config.connections);
    let guarded = |l, spec: &Spec, refusal| -> Result<connections::GuardedListener, ServerError> {
        Ok(connections::GuardedListener::new(to_tokio(l, spec.what)?, limits, refusal, spec.what))
    };
    let grpc_listener = guarded(listeners.otlp_grpc, &GRPC, connections::Refusal::Close)?;
    let http_listener = guarded(listeners.otlp_http, &HTTP, connections::Refusal::Http)?;
    let metrics_listener = guarded(listeners.metrics, &METRICS, connections::Refusal::Http)?;

    let (metrics_svc, logs_svc, trace_svc) = grpc::services(receiver.clone());
    let grpc_task = tokio::spawn({
        let stop = stopped(stop_rx.clone());
        async move {
            tonic::transport::Server::builder()
                .layer(tower::util::MapResponseLayer::new(
                    grpc::fix_bad_input_status::<tonic::body::Body>,
                ))
                .layer(tower::util::MapRequestLayer::new(crate::receiver::unary::one_message))
                // Pings find peers that vanished without closing; the head deadline of a
                // gRPC connection is `Guarded`'s (hyper's h2 has none).
                .http2_keepalive_interval(limits.http2_keepalive)
                .http2_keepalive_timeout(Some(connections::HTTP2_KEEPALIVE_TIMEOUT))
                .add_service(metrics_svc)
                .add_service(logs_svc)
                .add_service(trace_svc)
                // Without TCP_NODELAY (set by the guarded listener) a response written in several
                // pieces waits for the client's delayed ACK (~40 ms on Linux) before its last
                // piece leaves: every gRPC answer took ≥ 40 ms however fast the commit was.
                .serve_with_incoming_shutdown(connections::incoming(grpc_listener), stop)
                .await
                .map_err(|e| ServerError::Serve { what: GRPC.what, reason: e.to_string() })
        }
    });
    let http_task = tokio::spawn({
        let stop = stopped(stop_rx.clone());
        let app = http::router(receiver.clone());
        async move {
            connections::serve_http(http_listener, app, stop).await;
            Ok(())
        }
    });
    let metrics_task = tokio::spawn({
        let stop = stopped(stop_rx.clone());
        let app = metrics_endpoint::router(store.clone(), config.metrics.shape(), pushed.clone())
            .merge(push_endpoint::router(
                store.clone(),
                config.metrics.shape(),
                pushed.clone(),
                config.receiver.allowed_origins.clone(),
                config.receiver.max_body_bytes,
            ))
            .merge(dashboard_endpoint::router(
                store.clone(),
                crate::dashboard::Endpoints::from_bound(&addrs),
                crate::budget::BudgetsSource::of(config),
                stop_rx.clone(),
            ))
            .merge(import_endpoint::router(
                store.clone(),
                config.transcripts.clone(),
                stop_rx.clone(),
            ));
        let app = match scrape_auth {
            Some(auth) => {
                app.layer(axum::middleware::from_fn_with_state(auth, scrape_auth::require))
            }
            None => app,
        };
        async move {
            connections::serve_http(metrics_listener, app, stop).await;
            Ok(())
        }
    });

    // `[transcripts] expose`: the transcripts' share as series of this engine's own.
    let exposer = (config.transcripts.enabled && config.transcripts.expose).then(|| {
        let settle = std::time::Duration::from_secs(config.transcripts.settle_seconds);
        tokio::spawn(crate::transcripts::expose::run(
            receiver.clone(),
            settle,
            stopped(stop_rx.clone()),
        ))
    });

    shutdown.await;
    let _ = stop_tx.send(true);
    if let Some(task) = exposer {
        // A round in flight either committed or did not; the next start redoes it.
        if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
            tracing::warn!("exposing the transcripts did not stop in time");
        }
    }
    let mut first_error = None;
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    for (what, mut task) in
        [(GRPC.what, grpc_task), (HTTP.what, http_task), (METRICS.what, metrics_task)]
    {
        match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                first_error.get_or_insert(e);
            }
            Ok(Err(e)) => {
                first_error.get_or_insert(ServerError::Serve {
                    what: "server task",
                    reason: e.to_string(),
                });
            }
            Err(_) => {
                // Its connections are dropped with the runtime; nothing they had acknowledged
                // is lost (acknowledged means committed).
                task.abort();
                tracing::warn!(
                    server = what,
                    grace_seconds = SHUTDOWN_GRACE.as_secs(),
                    "connections still open after the stop grace period: closed"
                );
            }
        }
    }
    // Everything acknowledged is committed already; this only waits for queued work.
    let closing = store.clone();
    let _ = tokio::task::spawn_blocking(move || closing.close()).await;
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
