//! A local stand-in for the Anthropic Messages API, enough for `claude -p "say hi"`:
//! `POST /v1/messages` answers one text reply with fixed token usage (server-sent events when the
//! request asks for `"stream": true`, a JSON message otherwise); everything else is 404.
//! It counts the calls it answered, so a test can derive the exact token totals.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

/// Token usage reported for every reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_creation: u64,
}

#[derive(Default)]
struct Shared {
    usage: Option<Usage>,
    text: String,
    calls: AtomicU64,
    models: Mutex<Vec<String>>,
    /// `METHOD URI -> status` of every request, for failure messages.
    log: Mutex<Vec<String>>,
}

pub struct StandIn {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    rt: Option<tokio::runtime::Runtime>,
}

impl StandIn {
    /// Starts the server on 127.0.0.1 (a free port) in its own runtime.
    pub fn start(usage: Usage, text: &str) -> StandIn {
        let shared =
            Arc::new(Shared { usage: Some(usage), text: text.to_string(), ..Default::default() });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let listener =
            rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind stand-in");
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/v1/messages", post(messages))
            .fallback(not_found)
            .with_state(shared.clone());
        rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StandIn { addr, shared, rt: Some(rt) }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Number of `/v1/messages` calls answered with a reply (and so with usage).
    pub fn calls(&self) -> u64 {
        self.shared.calls.load(Ordering::SeqCst)
    }

    /// Models requested, one entry per answered call.
    pub fn models(&self) -> Vec<String> {
        self.shared.models.lock().unwrap().clone()
    }

    /// Every request seen (`METHOD URI -> status`).
    pub fn log(&self) -> Vec<String> {
        self.shared.log.lock().unwrap().clone()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

async fn not_found(State(st): State<Arc<Shared>>, method: Method, uri: Uri) -> StatusCode {
    st.log.lock().unwrap().push(format!("{method} {uri} -> 404"));
    StatusCode::NOT_FOUND
}

async fn messages(State(st): State<Arc<Shared>>, uri: Uri, body: Bytes) -> Response {
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            st.log.lock().unwrap().push(format!("POST {uri} -> 400 ({e})"));
            return (StatusCode::BAD_REQUEST, format!("bad json: {e}")).into_response();
        }
    };
    let model = req["model"].as_str().unwrap_or("claude-stand-in").to_string();
    let stream = req["stream"].as_bool().unwrap_or(false);
    let n = st.calls.fetch_add(1, Ordering::SeqCst) + 1;
    st.models.lock().unwrap().push(model.clone());
    st.log.lock().unwrap().push(format!("POST {uri} model={model} stream={stream} -> 200"));
    let u = st.usage.unwrap();
    let msg_id = format!("msg_standin_{n:06}");
    let request_id = format!("req_standin_{n:06}");
    if !stream {
        let body = json!({
            "id": msg_id, "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": st.text}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {
                "input_tokens": u.input, "output_tokens": u.output,
                "cache_creation_input_tokens": u.cache_creation, "cache_read_input_tokens": u.cache_read
            }
        });
        return (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::HeaderName::from_static("request-id"), request_id.as_str()),
            ],
            body.to_string(),
        )
            .into_response();
    }
    let events = [
        (
            "message_start",
            json!({"type": "message_start", "message": {
                "id": msg_id, "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {
                    "input_tokens": u.input,
                    "cache_creation_input_tokens": u.cache_creation,
                    "cache_read_input_tokens": u.cache_read,
                    "output_tokens": 0
                }
            }}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ("ping", json!({"type": "ping"})),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": st.text}}),
        ),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                   "usage": {"output_tokens": u.output}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    let mut sse = String::new();
    for (name, data) in events {
        sse.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    }
    (
        [
            (header::CONTENT_TYPE, "text/event-stream; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("request-id"), request_id.as_str()),
        ],
        sse,
    )
        .into_response()
}
