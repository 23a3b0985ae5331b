//! From OTLP export requests to normalised [`Batch`]es.
//!
//! This layer is stateless and protocol-agnostic: gRPC, HTTP/protobuf and HTTP/JSON all decode
//! to the same protobuf messages, which come here. Invalid points are counted as rejected (OTLP
//! `partial_success`) instead of failing the whole request.

pub(crate) mod agents;
pub(crate) mod attrs;
pub(crate) mod derived;
pub mod logs;
pub mod metrics;
pub(crate) mod model;
pub(crate) mod traces;

pub use model::{
    Batch, EventRecord, MetricPoint, Outgoing, PointValue, Resource, SeriesDesc, Shape, SpanRecord,
    Temporality,
};

use std::sync::Arc;

use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use xxhash_rust::xxh3::Xxh3;

/// What the user chose to keep of event content.
#[derive(Debug, Clone, Copy, Default)]
pub struct Privacy {
    /// Keep prompt, response and tool-input text. Off by default: only lengths are kept.
    pub store_prompts: bool,
}

/// Resource attributes never kept: Gemini CLI's `process.command_args` is its command line,
/// which holds the prompt of `gemini -p "…"`.
const DROPPED_RESOURCE_KEYS: &[&str] = &["process.command_args"];

/// Takes [`DROPPED_RESOURCE_KEYS`] out of OTLP resources (the copy queued for forwarding).
pub(crate) fn drop_private_resource_attrs<'a>(
    resources: impl Iterator<Item = &'a mut Option<ProtoResource>>,
) {
    for resource in resources.flatten() {
        resource.attributes.retain(|kv| !DROPPED_RESOURCE_KEYS.contains(&kv.key.as_str()));
    }
}

pub(crate) fn resource(proto: Option<ProtoResource>) -> Arc<Resource> {
    let mut attrs = attrs::from_proto(proto.map(|r| r.attributes).unwrap_or_default());
    attrs.retain(|(k, _)| !DROPPED_RESOURCE_KEYS.contains(&k.as_str()));
    let mut h = Xxh3::new();
    attrs::hash_attrs(&mut h, &attrs);
    Arc::new(Resource { key: h.digest128(), attrs })
}

pub(crate) fn client_of(resource: &Resource) -> Option<String> {
    let name = attrs::get_str(&resource.attrs, "service.name")?;
    Some(match attrs::get_str(&resource.attrs, "service.version") {
        Some(v) => format!("{name}/{v}"),
        None => name.to_string(),
    })
}

/// Current wall-clock time in unix nanoseconds.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
