//! The read-only dashboard on the metrics listener, for machines without a tray:
//!
//! * `GET /`, `/app.js`, `/style.css` — the window's own files ([`crate::dashboard::assets`]);
//! * `GET /api/dashboard` — the [`Dashboard`] JSON the window renders;
//! * `GET /api/activity?session=&kind=&limit=` — recent events for the Activity list;
//! * `GET /api/health` — who is listening (for `tokentray doctor`);
//! * `GET /api/events` — Server-Sent Events: `event: change` after each commit (data: the
//!   change's counts), and a comment every 15 s so proxies and browsers keep the stream open.
//!
//! The page only reads; nothing here writes to the store. Requests must name the host as an IP
//! address or `localhost` (DNS-rebinding guard).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
// tonic re-exports the `Stream` trait (futures-core's) for generated code; using it keeps the
// engine free of one more direct dependency.
use tokio::sync::{broadcast, mpsc, watch};
use tonic::codegen::tokio_stream::Stream;

use crate::budget::BudgetsSource;
use crate::dashboard::{self, activity, assets, Dashboard, Endpoints};
use crate::store::{Reader, Store, StoreError};

/// How often an idle event stream carries a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// What the browser waits before reconnecting a dropped event stream.
const RECONNECT: Duration = Duration::from_secs(2);

/// The page may load its own script and style and talk to its own origin, nothing else: it must
/// work offline and a compromised dependency could not phone home.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

struct Shared {
    store: Store,
    endpoints: Endpoints,
    budgets: BudgetsSource,
    /// One read connection reused across requests (opening one runs the migration check).
    reader: Mutex<Option<Reader>>,
    /// Turns true when the server shuts down: open event streams end so that the graceful
    /// shutdown, which waits for every response to finish, does not wait forever.
    stop: watch::Receiver<bool>,
}

/// Routes to merge into the metrics listener's router. `stop` is the server's shutdown signal.
pub(crate) fn router(
    store: Store,
    endpoints: Endpoints,
    budgets: BudgetsSource,
    stop: watch::Receiver<bool>,
) -> Router {
    let shared = Arc::new(Shared { store, endpoints, budgets, reader: Mutex::new(None), stop });
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/app.js", get(app_js))
        .route("/style.css", get(style_css))
        .route("/api/dashboard", get(api_dashboard))
        .route("/api/events", get(api_events))
        .route("/api/health", get(api_health))
        .route("/api/activity", get(api_activity))
        .with_state(shared)
        .layer(axum::middleware::from_fn(only_ip_or_localhost_hosts))
}

/// DNS rebinding guard: a web page on `evil.example` whose name is re-pointed at 127.0.0.1 would
/// be same-origin with this page and could read the user's usage. Browsers send the name they
/// resolved as `Host`, so only requests naming an IP address or `localhost` are answered.
pub(crate) async fn only_ip_or_localhost_hosts(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if host_is_ip_or_localhost(host) {
        next.run(request).await
    } else {
        (StatusCode::FORBIDDEN, "tokentray's dashboard and /metrics answer only to http://127.0.0.1:PORT/ or http://localhost:PORT/ (Host header refused)\n").into_response()
    }
}

fn host_is_ip_or_localhost(host: &str) -> bool {
    // `[::1]:8889`, `127.0.0.1:8889`, `localhost:8889`, or any of them without a port.
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(n, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                n
            } else {
                host
            }
        })
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::host_is_ip_or_localhost;

    #[test]
    fn only_addresses_and_localhost_are_hosts_of_the_dashboard() {
        for ok in [
            "127.0.0.1:8889",
            "127.0.0.1",
            "localhost:8889",
            "LOCALHOST",
            "[::1]:8889",
            "[::1]",
            "192.168.1.20:8889",
        ] {
            assert!(host_is_ip_or_localhost(ok), "{ok}");
        }
        for refused in [
            "evil.example:8889",
            "evil.example",
            "127.0.0.1.nip.io:8889",
            "",
            "localhost.evil.example",
        ] {
            assert!(!host_is_ip_or_localhost(refused), "{refused}");
        }
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", assets::INDEX_HTML)
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", assets::APP_JS)
}

async fn style_css() -> Response {
    asset("text/css; charset=utf-8", assets::STYLE_CSS)
}

/// Runs `query` on the shared read connection (opened on first use).
fn with_reader<T>(
    shared: &Shared,
    query: impl FnOnce(&Reader) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let cached = shared.reader.lock().map_err(|_| StoreError::Poisoned)?.take();
    let reader = match cached {
        Some(r) => r,
        None => shared.store.reader()?,
    };
    let result = query(&reader);
    // A failed query may mean a broken connection: only a reader that worked is kept.
    if result.is_ok() {
        if let Ok(mut slot) = shared.reader.lock() {
            slot.get_or_insert(reader);
        }
    }
    result
}

fn build_now(shared: &Shared) -> Result<Dashboard, StoreError> {
    with_reader(shared, |reader| {
        dashboard::build(reader, chrono::Local::now(), &shared.endpoints, &shared.budgets.current())
    })
}

/// A JSON answer of the metrics listener's API: not cached, not sniffed.
pub(super) fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    resp
}

/// `?session=ID&kind=api_request&limit=N` of the Activity list.
#[derive(Debug, serde::Deserialize)]
struct ActivityQuery {
    session: Option<String>,
    kind: Option<String>,
    limit: Option<usize>,
}

async fn api_activity(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<ActivityQuery>,
) -> Response {
    let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let (session, kind) = (nonempty(q.session), nonempty(q.kind));
    let limit = q.limit.unwrap_or(100);
    json_result(
        tokio::task::spawn_blocking(move || {
            with_reader(&shared, |r| {
                activity::activity(r, session.as_deref(), kind.as_deref(), limit)
            })
        })
        .await,
    )
}

async fn api_dashboard(State(shared): State<Arc<Shared>>) -> Response {
    json_result(tokio::task::spawn_blocking(move || build_now(&shared)).await)
}

/// A blocking query's result as JSON: 200 with the value, or 500 with `{"error": …}`.
fn json_result<T: serde::Serialize>(
    built: Result<Result<T, StoreError>, tokio::task::JoinError>,
) -> Response {
    let result = match built {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("query task failed: {e}")),
    };
    match result.and_then(|d| serde_json::to_vec(&d).map_err(|e| e.to_string())) {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(message) => {
            tracing::warn!(error = %message, "cannot answer the dashboard page");
            let body =
                serde_json::to_vec(&serde_json::json!({ "error": message })).unwrap_or_default();
            json_response(StatusCode::INTERNAL_SERVER_ERROR, body)
        }
    }
}

/// Who answers on this port, for `tokentray doctor`: that it is tokentray, which process, and
/// where its listeners are (so a port held by another program can be told apart).
async fn api_health(State(shared): State<Arc<Shared>>) -> Response {
    let body = serde_json::json!({
        "service": "tokentray",
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "endpoints": shared.endpoints,
    });
    json_response(StatusCode::OK, serde_json::to_vec(&body).unwrap_or_default())
}

/// Events forwarded by a task that owns the store subscription; the stream ends when that task
/// stops (client gone, server stopping, store closed).
struct Events(mpsc::Receiver<Event>);

impl Stream for Events {
    type Item = Result<Event, Infallible>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|e| e.map(Ok))
    }
}

async fn api_events(State(shared): State<Arc<Shared>>) -> Response {
    let mut changes = shared.store.subscribe();
    let mut stop = shared.stop.clone();
    let (tx, rx) = mpsc::channel::<Event>(16);
    tokio::spawn(async move {
        let stopping = async move {
            // A dropped sender means no shutdown will ever be signalled: never stop then.
            if stop.wait_for(|s| *s).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::pin!(stopping);
        // Tells the browser how soon to come back after a dropped connection.
        if tx.send(Event::default().retry(RECONNECT).comment("connected")).await.is_err() {
            return;
        }
        loop {
            let event = tokio::select! {
                _ = &mut stopping => break,
                _ = tx.closed() => break,
                change = changes.recv() => match change {
                    Ok(c) => Event::default()
                        .event("change")
                        .data(format!(r#"{{"points":{},"events":{},"at_ns":{}}}"#, c.points, c.events, c.at_ns)),
                    // Missed some notifications: one "something changed" covers them all.
                    Err(broadcast::error::RecvError::Lagged(_)) => Event::default().event("change").data("{}"),
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            };
            if tx.send(event).await.is_err() {
                break;
            }
        }
    });
    let mut resp = Sse::new(Events(rx))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
