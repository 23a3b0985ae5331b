//! The Pushgateway API on the metrics listener: `PUT`, `POST` and `DELETE` on
//! `/metrics/job/<job>{/<label>/<value>}` (see `crate::pushgateway`). Answers as Pushgateway
//! does: 200 for a stored push, 202 for a delete, 400 with the reason (the line number for a
//! malformed body) and nothing changed, 413 over the body limit (`[receiver] max_body_bytes`, the
//! receiver's), 415 for the protobuf-delimited format (not supported here).
//!
//! Behind the same guards as `/metrics` (the Host check, `[metrics] require_header`), and the
//! receiver's Origin check: a push changes state, and a web page could send one to
//! 127.0.0.1 as a "simple" cross-site request.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::on;
use axum::Router;

use crate::pushgateway::{self, expose, text, GroupingKey, PushError, PushMode};
use crate::store::pushgateway::{PushGroups, PushOutcome};
use crate::store::Store;

#[derive(Clone)]
struct Pushes {
    store: Store,
    shape: Arc<crate::exposition::shape::MetricsShape>,
    groups: Arc<PushGroups>,
    allowed_origins: Arc<Vec<String>>,
    max_body_bytes: usize,
}

pub(crate) fn router(
    store: Store,
    shape: crate::exposition::shape::MetricsShape,
    groups: Arc<PushGroups>,
    allowed_origins: Vec<String>,
    max_body_bytes: usize,
) -> Router {
    let methods = axum::routing::MethodFilter::PUT
        .or(axum::routing::MethodFilter::POST)
        .or(axum::routing::MethodFilter::DELETE);
    Router::new()
        .route("/metrics/{*grouping}", on(methods, push))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(Pushes {
            store,
            shape: Arc::new(shape),
            groups,
            allowed_origins: Arc::new(allowed_origins),
            max_body_bytes,
        })
        .layer(axum::middleware::from_fn(super::dashboard_endpoint::only_ip_or_localhost_hosts))
}

async fn push(
    State(pushes): State<Pushes>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Some(refusal) = origin_refused(&pushes, &headers) {
        return refusal;
    }
    let path = uri.path().strip_prefix("/metrics/").unwrap_or_default();
    let key = match GroupingKey::from_path(path) {
        Ok(key) => key,
        Err(e) => return bad(e),
    };
    if method == Method::DELETE {
        let groups = pushes.groups.clone();
        return match tokio::task::spawn_blocking(move || groups.delete(&key)).await {
            Ok(Ok(_)) => StatusCode::ACCEPTED.into_response(),
            Ok(Err(e)) => failed(e.to_string()),
            Err(e) => failed(e.to_string()),
        };
    }
    if is_protobuf(&headers) {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "tokentray accepts pushes in the Prometheus text format 0.0.4 only, not the protobuf delimited format; push text (Content-Type: text/plain; version=0.0.4)\n",
        )
            .into_response();
    }
    let bytes = match body {
        Ok(bytes) => bytes,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the pushed body is over the limit of {} bytes ([receiver] max_body_bytes)\n",
                    pushes.max_body_bytes
                ),
            )
                .into_response();
        }
        Err(rejection) => {
            return (StatusCode::BAD_REQUEST, format!("cannot read the body: {rejection}\n"))
                .into_response();
        }
    };
    let mode = if method == Method::PUT { PushMode::Replace } else { PushMode::Merge };
    store_push(pushes, key, bytes, mode).await
}

async fn store_push(pushes: Pushes, key: GroupingKey, body: Bytes, mode: PushMode) -> Response {
    // Parsed before anything is touched: a malformed body changes nothing at all.
    let families = match text::parse(&body, &key) {
        Ok(families) => families,
        Err(e) => return bad(e),
    };
    let taken = expose::names_in(&pushes.store.metrics_snapshot(&pushes.shape));
    if let Some(name) = expose::collision(&families, &taken) {
        return bad(PushError::Inconsistent(format!(
            "{name} is a metric tokentray exposes itself; push it under another name"
        )));
    }
    let now_ns = crate::ingest::now_ns();
    let groups = pushes.groups.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        groups.push(&key, now_ns, |current, all| {
            let combined = pushgateway::combine(current, families, mode);
            pushgateway::check_consistent(&key, &combined, all)?;
            Ok(combined)
        })
    })
    .await;
    match outcome {
        Ok(Ok(PushOutcome::Stored)) => StatusCode::OK.into_response(),
        Ok(Ok(PushOutcome::Refused(e))) => bad(e),
        Ok(Err(e)) => failed(e.to_string()),
        Err(e) => failed(e.to_string()),
    }
}

fn origin_refused(pushes: &Pushes, headers: &HeaderMap) -> Option<Response> {
    let origin = headers.get(header::ORIGIN)?;
    let origin = origin.to_str().unwrap_or("<non-ascii>");
    if pushes.allowed_origins.iter().any(|a| a == origin || a == "*") {
        return None;
    }
    Some(
        (StatusCode::FORBIDDEN, format!("{}\n", crate::receiver::origin_refusal(origin)))
            .into_response(),
    )
}

fn is_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().starts_with("application/vnd.google.protobuf"))
}

fn bad(e: PushError) -> Response {
    (StatusCode::BAD_REQUEST, format!("push refused, nothing changed: {e}\n")).into_response()
}

fn failed(reason: String) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot store the push: {reason}\n"))
        .into_response()
}
