//! `GET /metrics` in Prometheus text 0.0.4, or OpenMetrics 1.0 when the scraper asks for it,
//! shaped by `[metrics]` (idle series left out, `drop_labels` folded).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::exposition::shape::MetricsShape;
use crate::exposition::{encode, Format};
use crate::store::Store;

#[derive(Clone)]
struct Exposed {
    store: Store,
    shape: Arc<MetricsShape>,
}

/// `/metrics`, behind the same Host check as the dashboard (a DNS-rebinding page could read it
/// otherwise).
pub(crate) fn router(store: Store, shape: MetricsShape) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(Exposed { store, shape: Arc::new(shape) })
        .layer(axum::middleware::from_fn(super::dashboard_endpoint::only_ip_or_localhost_hosts))
}

async fn metrics(State(exposed): State<Exposed>, headers: HeaderMap) -> Response {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let snapshot = exposed.store.metrics_snapshot(&exposed.shape);
    let mut body = Vec::with_capacity(64 * 1024);
    match encode(&mut body, &snapshot, format) {
        Ok(()) => {
            (StatusCode::OK, [(header::CONTENT_TYPE, format.content_type())], body).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot render metrics: {e}"))
            .into_response(),
    }
}
