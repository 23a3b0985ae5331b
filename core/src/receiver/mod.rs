//! OTLP receivers: gRPC ([`grpc`]) and HTTP with protobuf or JSON bodies ([`http`]).
//!
//! Both decode to the same protobuf messages and hand them to one [`Receiver`], which normalises
//! them ([`crate::ingest`]) and waits for the store to commit before the client is answered.

pub mod body;
pub mod grpc;
pub mod http;
pub mod json;
pub mod status;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use crate::config::Config;
use crate::ingest::{self, Privacy};
use crate::store::{Ack, Store, StoreError};

pub use json::Signal;

/// Shared by every protocol: settings plus the store.
#[derive(Clone)]
pub struct Receiver {
    store: Store,
    privacy: Privacy,
    max_body_bytes: usize,
    allowed_origins: Vec<String>,
}

impl Receiver {
    pub fn new(store: Store, config: &Config) -> Receiver {
        Receiver {
            store,
            privacy: Privacy { store_prompts: config.privacy.store_prompts },
            max_body_bytes: config.receiver.max_body_bytes,
            allowed_origins: config.receiver.allowed_origins.clone(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// Browsers attach `Origin` to cross-site requests; telemetry clients never do. Refusing it
    /// keeps any web page from posting made-up spend to the local receiver.
    pub fn origin_allowed(&self, origin: Option<&str>) -> bool {
        match origin {
            None => true,
            Some(o) => self.allowed_origins.iter().any(|a| a == o || a == "*"),
        }
    }

    pub async fn export_metrics(&self, req: ExportMetricsServiceRequest) -> Result<Ack, StoreError> {
        let batch = ingest::metrics::normalize(req, ingest::now_ns());
        self.store.ingest(batch).await
    }

    pub async fn export_logs(&self, req: ExportLogsServiceRequest) -> Result<Ack, StoreError> {
        let batch = ingest::logs::normalize(req, ingest::now_ns(), self.privacy);
        self.store.ingest(batch).await
    }

    pub async fn export_traces(&self, req: ExportTraceServiceRequest) -> Result<Ack, StoreError> {
        self.store.ingest(ingest::traces::normalize(req)).await
    }
}

/// The message to send when the origin check fails.
pub(crate) fn origin_refusal(origin: &str) -> String {
    format!(
        "requests from web pages are refused (Origin: {origin}); add the origin to [receiver] allowed_origins in the tokentray config to allow it"
    )
}
