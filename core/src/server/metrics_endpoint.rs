//! `GET /metrics` in Prometheus text 0.0.4, or OpenMetrics 1.0 when the scraper asks for it,
//! shaped by `[metrics]` (idle series left out, `drop_labels` folded), followed by the
//! Pushgateway-style pushed groups (`crate::pushgateway`, served by [`super::push_endpoint`]).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::exposition::shape::MetricsShape;
use crate::exposition::{encode, Format};
use crate::pushgateway::expose;
use crate::store::pushgateway::PushGroups;
use crate::store::Store;

#[derive(Clone)]
struct Exposed {
    store: Store,
    shape: Arc<MetricsShape>,
    pushed: Arc<PushGroups>,
}

/// `/metrics`, behind the same Host check as the dashboard (a DNS-rebinding page could read it
/// otherwise).
pub(crate) fn router(store: Store, shape: MetricsShape, pushed: Arc<PushGroups>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(Exposed { store, shape: Arc::new(shape), pushed })
        .layer(axum::middleware::from_fn(super::dashboard_endpoint::only_ip_or_localhost_hosts))
}

async fn metrics(State(exposed): State<Exposed>, headers: HeaderMap) -> Response {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let snapshot = exposed.store.metrics_snapshot(&exposed.shape);
    let pushed = {
        let groups = exposed.pushed.clone();
        tokio::task::spawn_blocking(move || groups.groups()).await
    };
    let groups = match pushed {
        Ok(Ok(groups)) => groups,
        Ok(Err(e)) => return failed(e.to_string()),
        Err(e) => return failed(e.to_string()),
    };
    let mut body = Vec::with_capacity(64 * 1024);
    if let Err(e) = encode(&mut body, &snapshot, format) {
        return failed(e.to_string());
    }
    if !groups.is_empty() {
        // The pushed families go before OpenMetrics' closing `# EOF`.
        let om = format == Format::OpenMetrics100;
        if om && body.ends_with(b"# EOF\n") {
            body.truncate(body.len() - b"# EOF\n".len());
        }
        if let Err(e) = expose::write(&mut body, &groups, &expose::names_in(&snapshot), om) {
            return failed(e.to_string());
        }
        if om {
            body.extend_from_slice(b"# EOF\n");
        }
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

fn failed(reason: String) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot render metrics: {reason}")).into_response()
}
