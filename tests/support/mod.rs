//! Shared helpers of the end-to-end acceptance tests: the real binary as a child process
//! ([`Serve`]), the recorded Claude Code requests ([`fixtures`]), their replay over the real
//! transports ([`replay`]), a Prometheus text parser ([`prom`]) and a stand-in for the Anthropic
//! Messages API ([`anthropic`]).
#![allow(dead_code, unused_imports)]

pub mod anthropic;
pub mod claude;
pub mod fixtures;
pub mod forward;
pub mod grafana;
pub mod prom;
pub mod prometheus;
pub mod replay;
pub mod serve;
pub mod tls;

use std::time::{Duration, Instant};

pub use fixtures::{discover_sets, Expected, FixtureSet, Request, Signal, Transport};
pub use replay::Replayer;
pub use serve::Serve;

/// Relative tolerance of every float comparison (the README of the fixtures asks for ~1e-9).
pub const REL_TOL: f64 = 1e-9;

/// `a ≈ b` within [`REL_TOL`] (absolute 1e-12 near zero).
pub fn approx_eq(a: f64, b: f64) -> bool {
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    diff <= 1e-12 || diff <= REL_TOL * a.abs().max(b.abs())
}

/// Collects mismatches instead of stopping at the first one, so one failing run shows everything
/// that is wrong.
#[derive(Default, Debug)]
pub struct Checker {
    pub errors: Vec<String>,
}

impl Checker {
    pub fn new() -> Checker {
        Checker::default()
    }

    pub fn num(&mut self, what: impl AsRef<str>, got: f64, want: f64) {
        if !approx_eq(got, want) {
            self.errors.push(format!("{}: got {got}, want {want}", what.as_ref()));
        }
    }

    pub fn check(&mut self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            self.errors.push(msg());
        }
    }

    pub fn fail(&mut self, msg: impl Into<String>) {
        self.errors.push(msg.into());
    }

    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn merge(&mut self, prefix: &str, other: Checker) {
        self.errors.extend(other.errors.into_iter().map(|e| format!("{prefix}{e}")));
    }

    /// Panics listing every mismatch.
    pub fn assert_ok(&self, context: &str) {
        if !self.errors.is_empty() {
            panic!(
                "{context}: {} mismatch(es):\n  {}",
                self.errors.len(),
                self.errors.join("\n  ")
            );
        }
    }
}

/// Runs `check` until it reports no error or `timeout` passes; returns the last result.
/// For data that becomes visible shortly after it was acknowledged; never hides a wrong value,
/// only waits for it to settle.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> Checker) -> Checker {
    let deadline = Instant::now() + timeout;
    loop {
        let c = check();
        if c.ok() || Instant::now() >= deadline {
            return c;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Directory for throwaway files of a test (removed on drop).
pub fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().expect("tempdir")
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for a child that binds it
/// right away).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Posts one Claude Code-shaped usage export (cost and the four token types of session `s-1`,
/// ending now) to an OTLP/HTTP receiver as protobuf; panics unless it is accepted.
pub fn post_usage(http: std::net::SocketAddr, usage: tokentray_core::testkit::Usage) {
    post_usage_with(http, usage, &[]);
}

/// [`post_usage`] with extra request headers (a receiver's required token).
pub fn post_usage_with(
    http: std::net::SocketAddr,
    usage: tokentray_core::testkit::Usage,
    headers: &[(&str, &str)],
) {
    let now = now_ns();
    post_usage_at_with(http, "s-1", usage, now - 1_000_000_000, now, false, headers);
}

/// Now, in unix nanoseconds.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos()
        as u64
}

/// Posts the usage export of `session` for `[start_ns, time_ns]` (a delta, or with `cumulative`
/// the running total since `start_ns`); panics unless it is accepted.
pub fn post_usage_at(
    http: std::net::SocketAddr,
    session: &str,
    usage: tokentray_core::testkit::Usage,
    start_ns: u64,
    time_ns: u64,
    cumulative: bool,
) {
    post_usage_at_with(http, session, usage, start_ns, time_ns, cumulative, &[]);
}

/// [`post_usage_at`] with extra request headers.
#[allow(clippy::too_many_arguments)] // test support: the export's fields, spelled out
pub fn post_usage_at_with(
    http: std::net::SocketAddr,
    session: &str,
    usage: tokentray_core::testkit::Usage,
    start_ns: u64,
    time_ns: u64,
    cumulative: bool,
    headers: &[(&str, &str)],
) {
    use prost::Message;
    let req = tokentray_core::testkit::metrics_request(tokentray_core::testkit::usage_metrics(
        session,
        "u",
        "claude-opus-4-5",
        usage,
        start_ns,
        time_ns,
        cumulative,
    ));
    let mut post = reqwest::blocking::Client::new()
        .post(format!("http://{http}/v1/metrics"))
        .header("content-type", "application/x-protobuf");
    for (k, v) in headers {
        post = post.header(*k, *v);
    }
    let resp = post.body(req.encode_to_vec()).send().expect("POST /v1/metrics");
    assert!(resp.status().is_success(), "POST /v1/metrics: {}", resp.status());
}

/// Copies a directory tree (the captured transcripts into a test's HOME).
pub fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}
