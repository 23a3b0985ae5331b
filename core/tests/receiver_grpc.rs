//! OTLP/gRPC receiver on a real listener, driven by a raw HTTP/2 client so that compressed,
//! garbage and oversized frames are exactly what a misbehaving client would send.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::net::SocketAddr;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;
use tokentray_core::config::{Config, Listen};
use tokentray_core::server::{self, Listeners};
use tokentray_core::store::Store;
use tokentray_core::testkit::{self, Usage};

const METRICS_EXPORT: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

struct Running {
    _dir: tempfile::TempDir,
    store: Store,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
    }
}

async fn start(config: Config) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let listen = Listen {
        otlp_grpc: "127.0.0.1:0".into(),
        otlp_http: "127.0.0.1:0".into(),
        metrics: "127.0.0.1:0".into(),
    };
    let listeners = Listeners::bind(&listen).expect("bind");
    let addr = listeners.addrs().expect("addrs").otlp_grpc;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn({
        let store = store.clone();
        async move {
            server::run(listeners, store, &config, async {
                let _ = stopped.await;
            })
            .await
            .expect("server ran");
        }
    });
    Running { _dir: dir, store, addr, stop: Some(stop), task: Some(task) }
}

/// A gRPC length-prefixed message.
fn frame(compressed: bool, message: &[u8]) -> Vec<u8> {
    let mut out = vec![u8::from(compressed)];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("compress");
    e.finish().expect("finish")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends one unary call; returns (grpc-status, grpc-message).
async fn call(
    addr: SocketAddr,
    path: &str,
    extra: &[(&str, &str)],
    body: Vec<u8>,
) -> (i32, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (client, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut client = client.ready().await.expect("ready");
    let mut req = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let (resp, mut send) =
        client.send_request(req.body(()).expect("request"), false).expect("send");
    send.send_data(Bytes::from(body), true).expect("data");
    let resp = resp.await.expect("response");
    let (parts, mut body) = resp.into_parts();
    let read = |h: &http::HeaderMap| {
        h.get("grpc-status").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i32>().ok()).map(
            |code| {
                (
                    code,
                    percent_decode(
                        h.get("grpc-message").and_then(|v| v.to_str().ok()).unwrap_or(""),
                    ),
                )
            },
        )
    };
    if let Some(status) = read(&parts.headers) {
        return status;
    }
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("data");
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body.trailers().await.expect("trailers").unwrap_or_default();
    read(&trailers).expect("grpc-status in trailers")
}

fn request(session: &str, cost: f64) -> Vec<u8> {
    let usage = Usage { cost_usd: cost, ..Usage::TYPICAL };
    let req: ExportMetricsServiceRequest = testkit::metrics_request(testkit::usage_metrics(
        session,
        "u",
        testkit::MODEL,
        usage,
        1,
        2_000_000_000,
        false,
    ));
    req.encode_to_vec()
}

fn cost_total(store: &Store) -> f64 {
    tokentray_core::store::Reader::open(store.path().parent().expect("dir"))
        .expect("reader")
        .report("all", tokentray_core::query::TimeRange::ALL, None)
        .expect("report")
        .figures
        .cost_usd
}

fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_accepts_plain_and_gzip_and_refuses_bad_input() {
    let mut config = Config::default();
    config.receiver.max_body_bytes = 4 << 20;
    let s = start(config).await;

    assert_eq!(call(s.addr, METRICS_EXPORT, &[], frame(false, &request("a", 1.0))).await.0, 0);
    assert_eq!(
        call(
            s.addr,
            METRICS_EXPORT,
            &[("grpc-encoding", "gzip")],
            frame(true, &gzip(&request("b", 2.0)))
        )
        .await
        .0,
        0
    );

    // Garbage and truncated messages: INVALID_ARGUMENT, never a crash.
    let (code, msg) = call(s.addr, METRICS_EXPORT, &[], frame(false, &[0xff; 64])).await;
    assert_eq!(code, 3, "{msg}");
    let good = request("c", 4.0);
    assert_eq!(call(s.addr, METRICS_EXPORT, &[], frame(false, &good[..good.len() - 7])).await.0, 3);

    // Over the size limit on the wire: RESOURCE_EXHAUSTED.
    let (code, msg) =
        call(s.addr, METRICS_EXPORT, &[], frame(false, &vec![0u8; (4 << 20) + 1])).await;
    assert_eq!(code, 8, "{msg}");

    // A browser origin.
    let (code, msg) = call(
        s.addr,
        METRICS_EXPORT,
        &[("origin", "https://evil.example")],
        frame(false, &request("web", 50.0)),
    )
    .await;
    assert_eq!(code, 7, "{msg}");

    // Still serving; accepted data intact, refused data absent.
    assert_eq!(call(s.addr, METRICS_EXPORT, &[], frame(false, &request("d", 8.0))).await.0, 0);
    assert_eq!(cost_total(&s.store), 11.0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_gzip_bomb_is_refused_with_bounded_memory() {
    let s = start(Config::default()).await;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        enc.write_all(&chunk).expect("compress");
    }
    let bomb = enc.finish().expect("finish");
    let before = peak_rss();
    let (code, msg) =
        call(s.addr, METRICS_EXPORT, &[("grpc-encoding", "gzip")], frame(true, &bomb)).await;
    assert_eq!(code, 8, "{msg}");
    let grown = peak_rss().saturating_sub(before);
    assert!(grown < 128 << 20, "the bomb grew the peak RSS by {} MiB", grown >> 20);
    assert_eq!(call(s.addr, METRICS_EXPORT, &[], frame(false, &request("after", 1.0))).await.0, 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unary_call_with_two_messages_is_an_error_and_stores_nothing() {
    let s = start(Config::default()).await;
    // Before: the first message was stored, the second silently dropped, and the call said OK.
    let two = [frame(false, &request("a", 1.0)), frame(false, &request("b", 2.0))].concat();
    let (code, msg) = call(s.addr, METRICS_EXPORT, &[], two).await;
    assert_eq!(code, 3, "INVALID_ARGUMENT: {msg}");
    assert!(msg.contains("exactly one message"), "{msg}");
    assert_eq!(cost_total(&s.store), 0.0, "nothing of the call was stored");
    assert_eq!(call(s.addr, METRICS_EXPORT, &[], frame(false, &request("c", 4.0))).await.0, 0);
    assert_eq!(cost_total(&s.store), 4.0);
    s.stop().await;
}

/// A peer that opens an HTTP/2 connection and then never answers (a hung or suspended client)
/// must not hold the shutdown: the graceful close waits for the peer's answer to its GOAWAY ping,
/// and before the grace period it waited until the idle timeout (here an hour; 120 s by default,
/// past systemd's 90 s stop timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_answers_does_not_hold_the_shutdown() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut config = Config::default();
    config.connections.idle_timeout_seconds = 3600.0;
    let s = start(config).await;
    let mut tcp = tokio::net::TcpStream::connect(s.addr).await.expect("connect");
    // The client preface and an empty SETTINGS frame, then silence.
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0").await.expect("preface");
    // The server's SETTINGS frame header: the connection is being served.
    let mut header = [0u8; 9];
    tcp.read_exact(&mut header).await.expect("server settings");
    assert_eq!(header[3], 4, "first frame from the server is SETTINGS");
    tokio::time::timeout(std::time::Duration::from_secs(60), s.stop())
        .await
        .expect("the server stopped within 60 s of the stop signal despite the silent peer");
    drop(tcp);
}
