//! `google.rpc.Status`, the error body OTLP/HTTP responses carry.

/// gRPC status codes used in OTLP/HTTP error bodies.
pub mod code {
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const PERMISSION_DENIED: i32 = 7;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const UNAVAILABLE: i32 = 14;
    pub const UNAUTHENTICATED: i32 = 16;
    pub const UNIMPLEMENTED: i32 = 12;
}

/// Protobuf form of `google.rpc.Status` (details are never sent).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}
