//! Where tokentray listens, and the Claude Code settings that point at it.
//!
//! The window's empty state must show the ports actually bound (a user may have moved them, or
//! `serve` may run on port 0 in tests), so this is built from [`BoundAddrs`], never from defaults.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::Serialize;

use crate::config::Listen;
use crate::server::BoundAddrs;

/// The three listeners as `HOST:PORT`, exactly as bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoints {
    /// The OTLP/gRPC receiver.
    pub otlp_grpc: String,
    /// The OTLP/HTTP receiver.
    pub otlp_http: String,
    /// Prometheus `/metrics` and the dashboard.
    pub metrics: String,
}

impl Endpoints {
    /// The configured addresses (where the engine listens, or will once it runs).
    pub fn from_listen(listen: &Listen) -> Endpoints {
        Endpoints {
            otlp_grpc: listen.otlp_grpc.clone(),
            otlp_http: listen.otlp_http.clone(),
            metrics: listen.metrics.clone(),
        }
    }

    /// The addresses actually bound by a running engine (port 0 resolved).
    pub fn from_bound(addrs: &BoundAddrs) -> Endpoints {
        Endpoints {
            otlp_grpc: addrs.otlp_grpc.to_string(),
            otlp_http: addrs.otlp_http.to_string(),
            metrics: addrs.metrics.to_string(),
        }
    }

    /// The OTLP/gRPC address a client on this machine connects to.
    pub(crate) fn connectable_grpc(&self) -> String {
        connectable(&self.otlp_grpc)
    }

    /// The OTLP/HTTP address a client on this machine connects to.
    pub(crate) fn connectable_http(&self) -> String {
        connectable(&self.otlp_http)
    }

    /// The env block for Claude Code: `export` lines to paste into a shell profile, pointing at
    /// these ports (gRPC first, as in the README; the HTTP alternative as a comment, so both
    /// ports the user may need are on screen). Lines stay short enough for the 420 px window.
    pub fn claude_code_env(&self) -> String {
        let (grpc, http) = (self.connectable_grpc(), self.connectable_http());
        format!(
            "export CLAUDE_CODE_ENABLE_TELEMETRY=1\n\
             export OTEL_METRICS_EXPORTER=otlp\n\
             export OTEL_LOGS_EXPORTER=otlp\n\
             export OTEL_EXPORTER_OTLP_PROTOCOL=grpc\n\
             export OTEL_EXPORTER_OTLP_ENDPOINT=http://{grpc}\n\
             # or HTTP: OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf\n\
             #   OTEL_EXPORTER_OTLP_ENDPOINT=http://{http}\n"
        )
    }
}

/// An address a client on this machine can connect to: a wildcard bind (`0.0.0.0`, `[::]`)
/// becomes the loopback address of its family. A literal IP rather than `localhost` is used
/// because `localhost` may resolve to `::1` first while tokentray listens on `127.0.0.1` only.
pub fn connectable(bound: &str) -> String {
    match bound.parse::<SocketAddr>() {
        Ok(mut addr) => {
            if addr.ip().is_unspecified() {
                let loopback = match addr.ip() {
                    IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
                };
                addr.set_ip(loopback);
            }
            addr.to_string()
        }
        Err(_) => bound.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_block_points_at_the_bound_ports_and_never_at_a_wildcard() {
        let addrs = BoundAddrs {
            otlp_grpc: "0.0.0.0:5317".parse().expect("addr"),
            otlp_http: "[::]:5318".parse().expect("addr"),
            metrics: "127.0.0.1:9889".parse().expect("addr"),
        };
        let e = Endpoints::from_bound(&addrs);
        assert_eq!(e.otlp_grpc, "0.0.0.0:5317");
        assert_eq!(e.metrics, "127.0.0.1:9889");
        let env = e.claude_code_env();
        assert!(
            env.contains("export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:5317\n"),
            "{env}"
        );
        assert!(env.contains("http://[::1]:5318"), "{env}");
        assert!(env.contains("export CLAUDE_CODE_ENABLE_TELEMETRY=1\n"), "{env}");
    }
}
