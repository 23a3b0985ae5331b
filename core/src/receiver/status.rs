//! `google.rpc.Status`, the error body OTLP/HTTP responses carry.

/// gRPC status codes used in OTLP/HTTP error bodies.
pub mod code {
    /// The request is malformed: bad content type, encoding, protobuf or JSON (HTTP 400).
    pub const INVALID_ARGUMENT: i32 = 3;
    /// The browser `Origin` of the request is not allowed (HTTP 403).
    pub(crate) const PERMISSION_DENIED: i32 = 7;
    /// The body, compressed or decompressed, exceeds the size limit (HTTP 413).
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    /// The data could not be stored because the database is damaged; retrying cannot help
    /// (HTTP 500).
    pub const INTERNAL: i32 = 13;
    /// The data could not be stored; the client should retry (HTTP 503).
    pub const UNAVAILABLE: i32 = 14;
    /// A required authentication header is missing or wrong (HTTP 401).
    pub(crate) const UNAUTHENTICATED: i32 = 16;
    /// An operation or path that is not served (currently unused).
    pub const UNIMPLEMENTED: i32 = 12;
}

/// Protobuf form of `google.rpc.Status` (details are never sent).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    /// One of the [`code`] values.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// Human-readable reason, for the client's logs.
    #[prost(string, tag = "2")]
    pub message: String,
}
