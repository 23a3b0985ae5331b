//! OTLP receivers: gRPC ([`grpc`]) and HTTP with protobuf or JSON bodies ([`http`]).
//!
//! Both decode to the same protobuf messages and hand them to one [`Receiver`], which normalises
//! them ([`crate::ingest`]) and waits for the store to commit before the client is answered.

pub mod auth;
pub(crate) mod body;
pub(crate) mod grpc;
pub mod http;
pub(crate) mod json;
pub(crate) mod limits;
pub mod status;
pub(crate) mod unary;

use crate::config::Config;
use crate::ingest::{self, Outgoing, Privacy};
use crate::signal::OtlpSignal;
use crate::store::{Ack, Store, StoreError};

/// Shared by every protocol: settings plus the store.
#[derive(Clone)]
pub struct Receiver {
    store: Store,
    privacy: Privacy,
    max_body_bytes: usize,
    allowed_origins: Vec<String>,
    /// (lower-case name, value) pairs every request must carry; empty: no auth.
    required_headers: std::sync::Arc<Vec<(String, String)>>,
    limits: limits::AttributeLimits,
}

impl Receiver {
    /// A receiver writing to `store`, with the `[receiver]` limits and `[privacy]` settings of
    /// `config` and no required headers (add them with [`Receiver::require_headers`]).
    pub fn new(store: Store, config: &Config) -> Receiver {
        Receiver {
            store,
            privacy: Privacy { store_prompts: config.privacy.store_prompts },
            max_body_bytes: config.receiver.max_body_bytes,
            allowed_origins: config.receiver.allowed_origins.clone(),
            required_headers: Default::default(),
            limits: limits::AttributeLimits::of(&config.receiver),
        }
    }

    /// The store requests are written to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Largest request body accepted, in bytes, before and after decompression
    /// (`[receiver] max_body_bytes`).
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// Browsers attach `Origin` to cross-site requests; telemetry clients never do. Refusing it
    /// keeps any web page from posting made-up spend to the local receiver.
    pub(crate) fn origin_allowed(&self, origin: Option<&str>) -> bool {
        match origin {
            None => true,
            Some(o) => self.allowed_origins.iter().any(|a| a == o || a == "*"),
        }
    }

    /// A header every request must carry (`serve --require-header`), checked in constant time.
    pub fn require_headers(mut self, headers: Vec<(String, String)>) -> Receiver {
        self.required_headers = std::sync::Arc::new(
            headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect(),
        );
        self
    }

    /// `None` when the request may pass, else the reason to refuse it (without the secret).
    pub(crate) fn check_auth<'a>(&self, get: impl Fn(&str) -> Option<&'a [u8]>) -> Option<String> {
        for (name, want) in self.required_headers.iter() {
            match get(name) {
                Some(got) if constant_time_eq(got, want.as_bytes()) => {}
                Some(_) => return Some(format!("wrong {name} header")),
                None => return Some(format!("missing {name} header")),
            }
        }
        None
    }

    /// Stores one OTLP export request (after the attribute limits), queueing it for forwarding
    /// when forwarding of its signal is on, prompt text redacted unless `store_prompts` is on;
    /// the [`Ack`] says what was accepted and rejected.
    pub(crate) async fn export<S: OtlpSignal>(&self, req: S) -> Result<Ack, StoreError> {
        self.store.ingest(self.prepare(req)).await
    }

    /// Stores the series this engine made from its own transcripts (`[transcripts] expose`) the
    /// way [`Receiver::export`] stores a request, forwarding included, but outside the
    /// history's usage (reports count the transcripts already).
    pub(crate) async fn export_own_transcripts(
        &self,
        req: opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest,
    ) -> Result<Ack, StoreError> {
        let mut batch = self.prepare(req);
        batch.from_own_transcripts = true;
        self.store.ingest(batch).await
    }

    /// The request's batch: limits applied, normalised, and its copy for the team when
    /// forwarding of its signal is on.
    fn prepare<S: OtlpSignal>(&self, mut req: S) -> ingest::Batch {
        let refused = req.enforce_limits(&self.limits);
        let outgoing = S::SIGNAL.is_forwarded(self.store.forward_mode()).then(|| {
            let redacted = if self.privacy.store_prompts { None } else { req.redacted() };
            let mut copy = redacted.unwrap_or_else(|| req.clone());
            // What the store never keeps (Gemini CLI's command line, which holds its `-p`
            // prompt) is not queued for the team either: the queue is in the history file.
            ingest::drop_private_resource_attrs(copy.resources_mut());
            Outgoing::new(S::SIGNAL, &copy.encode_to_vec())
        });
        let mut batch = req.normalize(ingest::now_ns(), self.privacy);
        if let Some(reason) = refused.reason {
            batch.reject(refused.count, || reason);
        }
        batch.outgoing = outgoing;
        batch
    }
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // The length is not secret enough to hide; the bytes are compared without an early exit.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The message to send when the origin check fails.
pub(crate) fn origin_refusal(origin: &str) -> String {
    format!(
        "requests from web pages are refused (Origin: {origin}); add the origin to [receiver] allowed_origins in the tokentray config to allow it"
    )
}
