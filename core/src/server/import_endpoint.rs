//! `/api/import` on the metrics listener: the data directory has one engine, so a
//! `tokentray import` run beside it asks the engine to import instead of writing itself.
//!
//! * `POST /api/import` — starts an import of every transcript file in the engine (or joins the
//!   running one): 202 with the [`ImportStatus`] when started, 200 when joined, 409 when the
//!   engine's config has transcripts off.
//! * `GET /api/import` — the [`ImportStatus`] of the last (or running) import.
//!
//! Behind the same guards as the dashboard (the Host check, `[metrics] require_header`). A
//! `POST` that carries an `Origin` header comes from a web page (browsers send it on every
//! `POST`, the CLI never does) and is refused: a page could otherwise send it to 127.0.0.1 as a
//! "simple" cross-site request and make the engine work.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

use super::dashboard_endpoint::json_response;
use crate::store::Store;
use crate::transcripts::{ImportStatus, RequestError, RequestedImports, TranscriptsConfig};

/// Routes to merge into the metrics listener's router. `stop` is the server's shutdown signal:
/// a running import ends after its chunk when the server stops.
pub(crate) fn router(
    store: Store,
    transcripts: TranscriptsConfig,
    mut stop: watch::Receiver<bool>,
) -> Router {
    let imports = Arc::new(RequestedImports::new(store, transcripts));
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let imports = imports.clone();
        runtime.spawn(async move {
            // Also when the sender is gone: then the server has ended.
            let _ = stop.wait_for(|s| *s).await;
            imports.stop();
        });
    }
    Router::new()
        .route("/api/import", get(status).post(start))
        .with_state(imports)
        .layer(axum::middleware::from_fn(super::dashboard_endpoint::only_ip_or_localhost_hosts))
}

async fn status(State(imports): State<Arc<RequestedImports>>) -> Response {
    json(StatusCode::OK, &imports.status())
}

async fn start(State(imports): State<Arc<RequestedImports>>, headers: HeaderMap) -> Response {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("<non-ascii>");
        let message = format!(
            "requests from web pages are refused (Origin: {origin}): an import is started with `tokentray import`"
        );
        return error(StatusCode::FORBIDDEN, message);
    }
    match imports.start() {
        Ok(s) if s.joined => json(StatusCode::OK, &s),
        Ok(s) => json(StatusCode::ACCEPTED, &s),
        Err(e @ RequestError::Off) => error(StatusCode::CONFLICT, e.to_string()),
        Err(e @ RequestError::Thread(_)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn json(status: StatusCode, body: &ImportStatus) -> Response {
    json_response(status, serde_json::to_vec(body).unwrap_or_default())
}

fn error(status: StatusCode, message: String) -> Response {
    json_response(
        status,
        serde_json::to_vec(&serde_json::json!({ "error": message })).unwrap_or_default(),
    )
}
