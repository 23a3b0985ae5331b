//! `tokentray-loadgen`: load generator and resource probes for BENCHMARKS.md.
//!
//! Load (the default):
//!
//! ```text
//! tokentray-loadgen --target grpc|http --addr 127.0.0.1:4317 [--connections 4]
//!     [--points-per-request 1000] [--duration-secs 10] [--warmup-secs 2]
//!     [--series grow|fixed] [--fixed-series 10000] [--gzip] [--server-pid PID]
//! ```
//!
//! Each connection is a closed loop: build a Claude Code-shaped request with
//! `testkit::load_request` (cost + 4 token types per session, ~12 attributes a point), send it,
//! wait for the acknowledgement (which tokentray gives only after the commit), repeat. Only
//! requests that complete inside the measured window (after the warm-up) count; the latency is
//! send → acknowledgement. `--series grow` (default) gives every request new sessions, so every
//! point creates a series — the worst case for the store. `--series fixed` cycles through a fixed
//! set of `--fixed-series` series (rounded up to whole requests), the steady state of a long-running
//! receiver. Points refused through OTLP partial success are not counted as acknowledged.
//!
//! Requests are sent as pre-encoded protobuf bytes on both transports (gRPC through a pass-through
//! codec), so the generator spends its CPU on building requests only: in `fixed` mode all of them
//! are built before the run (the loadgen then costs almost nothing and the server gets the CPU of
//! this 2-core box); in `grow` mode each is built just before it is sent.
//!
//! Prints one JSON line (machine-readable) and then a table. `--server-pid` adds the server's
//! CPU time and memory over the measured window (from /proc).
//!
//! Probes:
//!
//! ```text
//! tokentray-loadgen startup --bin target/release/tokentray [--runs 20] [--data-dir DIR]
//! tokentray-loadgen idle --bin target/release/tokentray [--secs 60] [--data-dir DIR]
//! ```
//!
//! `startup` times spawn → the `listening …` line, on a fresh data dir and on an existing one.
//! `idle` starts `serve`, leaves it alone, and reads VmRSS/VmHWM and utime+stime from /proc.
//!
//! ```text
//! tokentray-loadgen forward --bin target/release/tokentray [--duration-secs 10]
//! ```
//!
//! ```text
//! tokentray-loadgen transcripts --dir DIR [--days 365]
//! ```
//!
//! `transcripts` writes a heavy user's Claude Code transcripts under `DIR/projects`
//! (`testkit::transcripts_year`) and prints what they add up to, for the import benchmark.
//!
//! `forward` starts a second `serve` as the team collector, then loads a local `serve` over gRPC
//! twice, forwarding off and on (to the collector, over gRPC): local ingest throughput and
//! latency side by side, and how fast the forwarder empties its queue.
// A benchmark tool, not library code: a failed setup step panics with what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{BufMut, Bytes};
use clap::{Parser, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use prost::Message;
use tokentray_core::testkit;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    Grpc,
    Http,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SeriesMode {
    /// Every request uses new sessions: every point is a new series.
    Grow,
    /// Requests cycle through a fixed set of series.
    Fixed,
}

#[derive(Debug, Parser)]
#[command(
    name = "tokentray-loadgen",
    about = "Load generator for tokentray's OTLP receivers",
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    probe: Option<Probe>,
    /// Protocol: OTLP/gRPC or OTLP/HTTP with protobuf bodies
    #[arg(long, value_enum, required = true)]
    target: Option<Target>,
    /// Receiver address, HOST:PORT (the gRPC or the HTTP port)
    #[arg(long, required = true)]
    addr: Option<String>,
    /// Concurrent connections, each a closed loop of one request at a time
    #[arg(long, default_value_t = 4)]
    connections: usize,
    #[arg(long, default_value_t = 1000)]
    points_per_request: usize,
    /// Measured time, after the warm-up
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,
    #[arg(long, default_value_t = 2.0)]
    warmup_secs: f64,
    #[arg(long, value_enum, default_value = "grow")]
    series: SeriesMode,
    /// With `--series fixed`: how many series to cycle through
    #[arg(long, default_value_t = 10_000)]
    fixed_series: usize,
    /// Compress request bodies with gzip
    #[arg(long)]
    gzip: bool,
    /// Also report this process's CPU and memory over the measured window
    #[arg(long)]
    server_pid: Option<u32>,
}

#[derive(Debug, Subcommand)]
enum Probe {
    /// Time from spawning `serve` to its listening line (median of runs)
    Startup {
        #[arg(long)]
        bin: PathBuf,
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Existing data dir for the "existing database" runs (e.g. a year of history) instead
        /// of one this probe creates
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// RSS and CPU of an idle `serve`
    Idle {
        #[arg(long)]
        bin: PathBuf,
        #[arg(long, default_value_t = 60)]
        secs: u64,
        /// Use this data dir (e.g. one holding a year of history) instead of an empty one
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Local ingest with forwarding off and on (to a second `serve` over gRPC), and the
    /// forwarder's own throughput
    Forward {
        #[arg(long)]
        bin: PathBuf,
        #[arg(long, default_value_t = 10.0)]
        duration_secs: f64,
        #[arg(long, default_value_t = 4)]
        connections: usize,
        #[arg(long, default_value_t = 1000)]
        points_per_request: usize,
    },
    /// Writes a heavy user's Claude Code transcripts (issue 15's benchmark: 12 sessions a day,
    /// 30 requests each) under DIR/projects, as the CLI writes `~/.claude`, and prints their
    /// totals as JSON
    Transcripts {
        /// The config directory to write (point `CLAUDE_CONFIG_DIR` or `~/.claude` at it)
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 365)]
        days: u64,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match &args.probe {
        Some(Probe::Startup { bin, runs, data_dir }) => startup(bin, *runs, data_dir.as_deref()),
        Some(Probe::Idle { bin, secs, data_dir }) => idle(bin, *secs, data_dir.as_deref()),
        Some(Probe::Forward { bin, duration_secs, connections, points_per_request }) => {
            forward(bin, *duration_secs, *connections, *points_per_request)
        }
        Some(Probe::Transcripts { dir, days }) => transcripts(dir, *days),
        None => load(&args).map(|_| ()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokentray-loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `transcripts`: a year (or `days`) of transcripts ending now, and their totals.
fn transcripts(dir: &Path, days: u64) -> anyhow::Result<()> {
    let now = tokentray_core::ingest::now_ns() as u64;
    let plan = testkit::transcripts_year::TranscriptPlan::heavy_user(days, now);
    let started = Instant::now();
    let t = plan.write(dir).with_context(|| format!("writing under {}", dir.display()))?;
    let json = serde_json::json!({
        "dir": dir.display().to_string(),
        "days": days,
        "files": t.files,
        "sessions": t.sessions,
        "requests": t.requests,
        "api_errors": t.api_errors,
        "lines": t.lines,
        "bytes": t.bytes,
        "projects": t.projects,
        "tokens": {"input": t.input, "output": t.output, "cacheRead": t.cache_read, "cacheCreation": t.cache_creation},
        "cost_usd": t.cost_usd,
        "write_secs": started.elapsed().as_secs_f64(),
    });
    println!("{json}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// /proc

/// Clock ticks per second of /proc/<pid>/stat times.
fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: &str, tck: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / tck)
}

/// A `Vm*` line of /proc/<pid>/status, in KiB.
fn vm_kib(pid: &str, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(key)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

fn threads(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("Threads:")?.trim().parse().ok())
}

// ---------------------------------------------------------------------------------------------
// Load

struct Plan {
    points: usize,
    sessions_per_request: usize,
    series: SeriesMode,
    /// Request bytes are gzipped (HTTP with `--gzip`).
    gzip: bool,
    /// tonic compresses (gRPC with `--gzip`).
    grpc_gzip: bool,
    /// Fixed mode: the encoded requests of one cycle, built before the run.
    prebuilt: Vec<Bytes>,
    start: Instant,
    measure_from: Instant,
    end: Instant,
    next_request: AtomicU64,
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Plan {
    /// The next request, protobuf-encoded (and gzipped with `--gzip`).
    fn request(&self) -> Bytes {
        let n = self.next_request.fetch_add(1, Ordering::Relaxed) as usize;
        match self.series {
            SeriesMode::Fixed => self.prebuilt[n % self.prebuilt.len()].clone(),
            SeriesMode::Grow => encode(
                testkit::load_request(self.points, n * self.sessions_per_request, now_ns()),
                self.gzip,
            ),
        }
    }
}

fn encode(
    req: opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest,
    gzip: bool,
) -> Bytes {
    let raw = req.encode_to_vec();
    Bytes::from(if gzip { gzip_bytes(&raw) } else { raw })
}

/// gRPC codec that sends already-encoded (and, with `--gzip`, already-compressed) messages.
#[derive(Clone, Copy, Default)]
struct RawCodec;
struct RawEncoder;
struct ResponseDecoder;

impl tonic::codec::Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ExportMetricsServiceResponse;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

impl tonic::codec::Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for ResponseDecoder {
    type Item = ExportMetricsServiceResponse;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Self::Item>, tonic::Status> {
        ExportMetricsServiceResponse::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(format!("undecodable response: {e}")))
    }
}

/// A gRPC message that is already gzip-compressed is sent with the compressed flag set, which
/// tonic sets only when it compresses itself; so with `--gzip` the gRPC path lets tonic compress.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

#[derive(Default)]
struct Tally {
    requests: u64,
    points: u64,
    rejected: u64,
    errors: u64,
    first_error: Option<String>,
    /// Requests completed during the warm-up (not counted).
    warmup_requests: u64,
}

struct Outcome {
    latency: Histogram<u64>,
    tally: Tally,
}

impl Outcome {
    fn new() -> Outcome {
        Outcome {
            latency: Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds"),
            tally: Tally::default(),
        }
    }

    /// Counts one answered request that was sent at `sent` and answered now.
    fn record(&mut self, plan: &Plan, sent: Instant, result: Result<u64, String>) {
        let done = Instant::now();
        if sent < plan.measure_from || done > plan.end {
            if done <= plan.measure_from {
                self.tally.warmup_requests += 1;
            }
            if let Err(e) = result {
                self.tally.errors += 1;
                self.tally.first_error.get_or_insert(e);
            }
            return;
        }
        match result {
            Ok(rejected) => {
                let us = done.duration_since(sent).as_micros().max(1) as u64;
                let _ = self.latency.record(us.min(120_000_000));
                self.tally.requests += 1;
                self.tally.points += plan.points as u64 - rejected.min(plan.points as u64);
                self.tally.rejected += rejected;
            }
            Err(e) => {
                self.tally.errors += 1;
                self.tally.first_error.get_or_insert(e);
            }
        }
    }
}

fn gzip_bytes(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        flate2::Compression::fast(),
    );
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

async fn grpc_worker(addr: String, plan: Arc<Plan>) -> anyhow::Result<Outcome> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("connecting to {addr} (gRPC)"))?;
    let mut client = tonic::client::Grpc::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    if plan.grpc_gzip {
        client = client.send_compressed(tonic::codec::CompressionEncoding::Gzip);
    }
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(EXPORT_PATH);
    let mut out = Outcome::new();
    while Instant::now() < plan.end {
        let req = plan.request();
        let sent = Instant::now();
        let call = async {
            client
                .ready()
                .await
                .map_err(|e| tonic::Status::unavailable(format!("connection not ready: {e}")))?;
            client.unary(tonic::Request::new(req), path.clone(), RawCodec).await
        };
        let result = match call.await {
            Ok(resp) => Ok(resp
                .into_inner()
                .partial_success
                .map(|p| p.rejected_data_points.max(0) as u64)
                .unwrap_or(0)),
            Err(status) => Err(format!("gRPC {:?}: {}", status.code(), status.message())),
        };
        let failed = result.is_err();
        out.record(&plan, sent, result);
        if failed {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(out)
}

async fn http_worker(addr: String, plan: Arc<Plan>) -> anyhow::Result<Outcome> {
    // One keep-alive connection per worker.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(120))
        .build()?;
    let url = format!("http://{addr}/v1/metrics");
    let mut out = Outcome::new();
    while Instant::now() < plan.end {
        let body = plan.request();
        let mut req = client.post(&url).header("content-type", "application/x-protobuf");
        if plan.gzip {
            req = req.header("content-encoding", "gzip");
        }
        let sent = Instant::now();
        let result = match req.body(body).send().await {
            Ok(resp) if resp.status().is_success() => match resp.bytes().await {
                Ok(b) => ExportMetricsServiceResponse::decode(b.as_ref())
                    .map(|r| {
                        r.partial_success.map(|p| p.rejected_data_points.max(0) as u64).unwrap_or(0)
                    })
                    .map_err(|e| format!("undecodable response: {e}")),
                Err(e) => Err(format!("reading the response: {e}")),
            },
            Ok(resp) => {
                let status = resp.status();
                Err(format!(
                    "HTTP {status}: {}",
                    resp.text().await.unwrap_or_default().chars().take(200).collect::<String>()
                ))
            }
            Err(e) => Err(format!("request failed: {e}")),
        };
        let failed = result.is_err();
        out.record(&plan, sent, result);
        if failed {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(out)
}

fn load(args: &Args) -> anyhow::Result<serde_json::Value> {
    let (Some(target), Some(addr)) = (args.target, args.addr.clone()) else {
        bail!("--target and --addr are required")
    };
    if args.connections == 0 || args.points_per_request == 0 || args.duration_secs <= 0.0 {
        bail!("--connections, --points-per-request and --duration-secs must be positive");
    }
    let sessions_per_request = args.points_per_request.div_ceil(5).max(1);
    let cycle = args.fixed_series.div_ceil(5).div_ceil(sessions_per_request).max(1);
    let tck = clk_tck();
    let request_bytes = testkit::load_request(args.points_per_request, 0, 0).encoded_len();
    // gRPC compresses in tonic (see EXPORT_PATH); HTTP bodies are compressed here.
    let pre_gzip = args.gzip && target == Target::Http;
    let prebuilt: Vec<Bytes> = match args.series {
        SeriesMode::Fixed => {
            let now = now_ns();
            (0..cycle)
                .map(|i| {
                    encode(
                        testkit::load_request(
                            args.points_per_request,
                            i * sessions_per_request,
                            now,
                        ),
                        pre_gzip,
                    )
                })
                .collect()
        }
        SeriesMode::Grow => Vec::new(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup_secs.max(0.0));
    let end = measure_from + Duration::from_secs_f64(args.duration_secs);
    let plan = Arc::new(Plan {
        points: args.points_per_request,
        sessions_per_request,
        series: args.series,
        gzip: pre_gzip,
        grpc_gzip: args.gzip && target == Target::Grpc,
        prebuilt,
        start,
        measure_from,
        end,
        next_request: AtomicU64::new(0),
    });

    let server_pid = args.server_pid.map(|p| p.to_string());
    let self_pid = std::process::id().to_string();
    // CPU counters at the start of the measured window, read by a probe task.
    let probe = {
        let server_pid = server_pid.clone();
        let self_pid = self_pid.clone();
        let measure_from = plan.measure_from;
        let end = plan.end;
        runtime.spawn(async move {
            tokio::time::sleep_until(measure_from.into()).await;
            let at_start = (
                server_pid.as_deref().and_then(|p| cpu_seconds(p, tck)),
                cpu_seconds(&self_pid, tck),
                Instant::now(),
            );
            tokio::time::sleep_until(end.into()).await;
            let at_end = (
                server_pid.as_deref().and_then(|p| cpu_seconds(p, tck)),
                cpu_seconds(&self_pid, tck),
                Instant::now(),
                server_pid.as_deref().and_then(|p| vm_kib(p, "VmRSS")),
                server_pid.as_deref().and_then(|p| vm_kib(p, "VmHWM")),
            );
            (at_start, at_end)
        })
    };

    let outcomes: Vec<Outcome> = runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..args.connections {
            let (addr, plan) = (addr.clone(), plan.clone());
            match target {
                Target::Grpc => tasks.spawn(grpc_worker(addr, plan)),
                Target::Http => tasks.spawn(http_worker(addr, plan)),
            };
        }
        let mut outs = Vec::new();
        while let Some(r) = tasks.join_next().await {
            outs.push(r.context("worker panicked")??);
        }
        anyhow::Ok(outs)
    })?;
    let ((srv0, me0, t0), (srv1, me1, t1, rss, hwm)) = runtime.block_on(probe)?;
    let cpu_pct = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => Some(100.0 * (b - a) / t1.duration_since(t0).as_secs_f64()),
        _ => None,
    };
    let server_cpu = cpu_pct(srv0, srv1);
    let client_cpu = cpu_pct(me0, me1);

    let mut latency = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3)?;
    let mut t = Tally::default();
    for o in &outcomes {
        latency.add(&o.latency)?;
        t.requests += o.tally.requests;
        t.points += o.tally.points;
        t.rejected += o.tally.rejected;
        t.errors += o.tally.errors;
        t.warmup_requests += o.tally.warmup_requests;
        if t.first_error.is_none() {
            t.first_error = o.tally.first_error.clone();
        }
    }
    let secs = args.duration_secs;
    let pps = t.points as f64 / secs;
    let rps = t.requests as f64 / secs;
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    let (p50, p90, p99, max) = (ms(0.50), ms(0.90), ms(0.99), latency.max() as f64 / 1000.0);
    let series_desc = match args.series {
        SeriesMode::Grow => "grow".to_string(),
        SeriesMode::Fixed => format!("fixed:{}", cycle * sessions_per_request * 5),
    };
    let target_name = match target {
        Target::Grpc => "grpc",
        Target::Http => "http",
    };
    let summary = serde_json::json!({
        "target": target_name,
        "addr": addr,
        "connections": args.connections,
        "points_per_request": args.points_per_request,
        "request_bytes": request_bytes,
        "series": series_desc,
        "gzip": args.gzip,
        "duration_s": secs,
        "warmup_s": args.warmup_secs,
        "requests": t.requests,
        "warmup_requests": t.warmup_requests,
        "points_acked": t.points,
        "points_rejected": t.rejected,
        "errors": t.errors,
        "points_per_s": pps.round(),
        "requests_per_s": (rps * 10.0).round() / 10.0,
        "latency_ms": { "p50": p50, "p90": p90, "p99": p99, "max": max },
        "server_cpu_pct": server_cpu.map(|v| (v * 10.0).round() / 10.0),
        "server_rss_kib": rss,
        "server_hwm_kib": hwm,
        "client_cpu_pct": client_cpu.map(|v| (v * 10.0).round() / 10.0),
    });
    println!("{summary}");
    println!();
    println!(
        "tokentray-loadgen: {target_name} {addr}, {} connections, {} points/request ({} KiB of protobuf), series {series_desc}{}",
        args.connections,
        args.points_per_request,
        request_bytes / 1024,
        if args.gzip { ", gzip" } else { "" }
    );
    println!(
        "  measured            {secs:.1} s (after {:.1} s warm-up, {} requests)",
        args.warmup_secs, t.warmup_requests
    );
    println!("  acknowledged        {} requests, {} points", t.requests, t.points);
    println!("  throughput          {pps:.0} points/s ({rps:.1} requests/s)");
    println!("  ack latency (ms)    p50 {p50:.2}   p90 {p90:.2}   p99 {p99:.2}   max {max:.2}");
    if t.rejected > 0 || t.errors > 0 {
        println!(
            "  refused / errors    {} points / {} requests  {}",
            t.rejected,
            t.errors,
            t.first_error.as_deref().unwrap_or("")
        );
    }
    if let Some(c) = server_cpu {
        println!(
            "  server CPU          {c:.0}% of one core; RSS {} KiB (peak {} KiB)",
            rss.unwrap_or(0),
            hwm.unwrap_or(0)
        );
    }
    if let Some(c) = client_cpu {
        println!("  loadgen CPU         {c:.0}% of one core");
    }
    if t.requests == 0 {
        bail!(
            "no request was acknowledged in the measured window{}",
            t.first_error.map(|e| format!(": {e}")).unwrap_or_default()
        );
    }
    let _ = plan.start;
    Ok(summary)
}

// ---------------------------------------------------------------------------------------------
// Probes

struct Spawned {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

fn spawn_serve(bin: &Path, data_dir: &Path) -> anyhow::Result<Spawned> {
    spawn_serve_with(bin, data_dir, Path::new("/nonexistent.toml"))
}

fn tokentray(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("TOKENTRAY_") {
            cmd.env_remove(&k);
        }
    }
    cmd
}

fn spawn_serve_with(bin: &Path, data_dir: &Path, config: &Path) -> anyhow::Result<Spawned> {
    let mut child = tokentray(bin)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--config")
        .arg(config)
        .args([
            "serve",
            "--otlp-grpc",
            "127.0.0.1:0",
            "--otlp-http",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("spawning {}", bin.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    Ok(Spawned { child, lines: BufReader::new(stdout).lines() })
}

fn stop(mut s: Spawned) {
    let pid = s.child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = s.child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = s.child.kill();
    let _ = s.child.wait();
}

fn scratch_dir(tag: &str) -> anyhow::Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir()
        .join(format!("tokentray-loadgen-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Spawn → listening line, in milliseconds.
fn time_to_listen(bin: &Path, data_dir: &Path) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    let mut s = spawn_serve(bin, data_dir)?;
    let line = s.lines.next().context("serve closed stdout without a listening line")??;
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    if !line.starts_with("listening ") {
        bail!("unexpected first line: {line}");
    }
    stop(s);
    Ok(ms)
}

fn stats(mut v: Vec<f64>) -> (f64, f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    (q(0.5), q(0.9), v[0], v[v.len() - 1])
}

fn startup(bin: &Path, runs: usize, data_dir: Option<&Path>) -> anyhow::Result<()> {
    let runs = runs.max(1);
    let mut fresh = Vec::new();
    let mut existing = Vec::new();
    let kept = match data_dir {
        Some(d) => d.to_path_buf(),
        None => scratch_dir("startup-existing")?,
    };
    // Creates the database once (or warms the file cache); the "existing" runs open it.
    time_to_listen(bin, &kept)?;
    for _ in 0..runs {
        let dir = scratch_dir("startup-fresh")?;
        fresh.push(time_to_listen(bin, &dir)?);
        let _ = std::fs::remove_dir_all(&dir);
        existing.push(time_to_listen(bin, &kept)?);
    }
    if data_dir.is_none() {
        let _ = std::fs::remove_dir_all(&kept);
    }
    let (f50, f90, fmin, fmax) = stats(fresh);
    let (e50, e90, emin, emax) = stats(existing);
    println!(
        "{}",
        serde_json::json!({
            "probe": "startup", "runs": runs, "existing_data_dir": data_dir.map(|d| d.display().to_string()),
            "fresh_ms": { "median": f50, "p90": f90, "min": fmin, "max": fmax },
            "existing_ms": { "median": e50, "p90": e90, "min": emin, "max": emax },
        })
    );
    println!();
    println!("spawn → listening line, {runs} runs each");
    println!("  new data dir       median {f50:.1} ms   p90 {f90:.1} ms   min {fmin:.1} ms   max {fmax:.1} ms");
    println!("  existing database  median {e50:.1} ms   p90 {e90:.1} ms   min {emin:.1} ms   max {emax:.1} ms");
    Ok(())
}

fn idle(bin: &Path, secs: u64, data_dir: Option<&Path>) -> anyhow::Result<()> {
    let tck = clk_tck();
    let (dir, scratch) = match data_dir {
        Some(d) => (d.to_path_buf(), false),
        None => (scratch_dir("idle")?, true),
    };
    let t0 = Instant::now();
    let mut s = spawn_serve(bin, &dir)?;
    let line = s.lines.next().context("serve closed stdout without a listening line")??;
    let ready = t0.elapsed();
    let pid = s.child.id().to_string();
    // CPU from 5 s after start (the start-up itself excluded) to the end.
    let settle = Duration::from_secs(5.min(secs));
    std::thread::sleep(settle.saturating_sub(t0.elapsed()));
    let c0 = cpu_seconds(&pid, tck).context("reading /proc stat")?;
    let w0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs).saturating_sub(t0.elapsed()));
    let c1 = cpu_seconds(&pid, tck).context("reading /proc stat")?;
    let window = w0.elapsed().as_secs_f64();
    let total = t0.elapsed().as_secs_f64();
    let rss = vm_kib(&pid, "VmRSS");
    let hwm = vm_kib(&pid, "VmHWM");
    let nthreads = threads(&pid);
    stop(s);
    if scratch {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let idle_pct = 100.0 * (c1 - c0) / window.max(1e-9);
    let all_pct = 100.0 * c1 / total;
    println!(
        "{}",
        serde_json::json!({
            "probe": "idle", "secs": total, "data_dir": data_dir.map(|d| d.display().to_string()),
            "rss_kib": rss, "hwm_kib": hwm, "threads": nthreads,
            "cpu_s_total": c1, "cpu_pct_since_start": all_pct,
            "cpu_s_idle_window": c1 - c0, "idle_window_s": window, "cpu_pct_idle": idle_pct,
            "ready_ms": ready.as_secs_f64() * 1000.0,
        })
    );
    println!();
    println!("idle serve ({line}) after {total:.0} s");
    println!(
        "  RSS                {} KiB ({:.1} MiB), peak {} KiB, {} threads",
        rss.unwrap_or(0),
        rss.unwrap_or(0) as f64 / 1024.0,
        hwm.unwrap_or(0),
        nthreads.unwrap_or(0)
    );
    println!("  CPU since start    {c1:.2} s = {all_pct:.3}% of one core");
    println!(
        "  CPU when idle      {:.2} s over the last {window:.0} s = {idle_pct:.3}% of one core",
        c1 - c0
    );
    Ok(())
}

/// The gRPC address of a `listening otlp-grpc=… otlp-http=… metrics=…` line.
fn grpc_addr(s: &mut Spawned) -> anyhow::Result<String> {
    let line = s.lines.next().context("serve closed stdout without a listening line")??;
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("otlp-grpc="))
        .map(str::to_string)
        .with_context(|| format!("unexpected first line: {line}"))
}

fn forward(
    bin: &Path,
    secs: f64,
    connections: usize,
    points_per_request: usize,
) -> anyhow::Result<()> {
    let team_dir = scratch_dir("team")?;
    let mut team = spawn_serve(bin, &team_dir)?;
    let team_grpc = grpc_addr(&mut team)?;
    let mut rows = Vec::new();
    // Nobody listens here: forwarding on with the collector down costs the queueing only.
    let unreachable = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.to_string();
    for (label, on, endpoint) in [
        ("off", false, &team_grpc),
        ("on, collector down", true, &unreachable),
        ("on", true, &team_grpc),
    ] {
        let dir = scratch_dir(if on { "forward-on" } else { "forward-off" })?;
        let (data, config) = (dir.join("data"), dir.join("config.toml"));
        std::fs::write(
            &config,
            format!("[forward]\nendpoint = \"http://{endpoint}\"\nprotocol = \"grpc\"\n"),
        )?;
        let status_cmd = |args: &[&str]| -> anyhow::Result<serde_json::Value> {
            let out = tokentray(bin)
                .arg("--data-dir")
                .arg(&data)
                .arg("--config")
                .arg(&config)
                .args(args)
                .output()?;
            if !out.status.success() {
                bail!("tokentray {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            }
            Ok(serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null))
        };
        if on {
            status_cmd(&["forward", "on"])?;
        }
        let mut local = spawn_serve_with(bin, &data, &config)?;
        let addr = grpc_addr(&mut local)?;
        let args = Args {
            probe: None,
            target: Some(Target::Grpc),
            addr: Some(addr),
            connections,
            points_per_request,
            duration_secs: secs,
            warmup_secs: 2.0,
            series: SeriesMode::Fixed,
            fixed_series: 10_000,
            gzip: false,
            server_pid: Some(local.child.id()),
        };
        let t0 = Instant::now();
        let summary = load(&args)?;
        let sent_points = (summary["requests"].as_u64().unwrap_or(0)
            + summary["warmup_requests"].as_u64().unwrap_or(0))
            * points_per_request as u64;
        let mut drained = None;
        if on && endpoint == &team_grpc {
            let deadline = Instant::now() + Duration::from_secs(600);
            while Instant::now() < deadline {
                let st = status_cmd(&["forward", "status", "--json"])?;
                if st["queue"]["requests"] == 0 {
                    drained = Some((t0.elapsed().as_secs_f64(), st));
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        stop(local);
        let row = serde_json::json!({
            "forwarding": label,
            "ingest_points_per_s": summary["points_per_s"],
            "latency_ms": summary["latency_ms"],
            "server_cpu_pct": summary["server_cpu_pct"],
            "points_ingested": sent_points,
            "forward_points_per_s": drained.as_ref().map(|(t, _)| (sent_points as f64 / t).round()),
            "queue_empty_after_s": drained.as_ref().map(|(t, _)| (t * 10.0).round() / 10.0),
            "forward_errors": drained.as_ref().map(|(_, st)| st["last_error"].clone()),
        });
        rows.push(row);
        let _ = std::fs::remove_dir_all(&dir);
    }
    stop(team);
    let _ = std::fs::remove_dir_all(&team_dir);
    println!("{}", serde_json::json!({ "forward": rows }));
    println!();
    println!("forwarding           ingest points/s   p50 ms   p99 ms   forwarded points/s (load start → queue empty)");
    for r in &rows {
        println!(
            "{:<20} {:>15}   {:>6}   {:>6}   {}",
            r["forwarding"].as_str().unwrap_or(""),
            r["ingest_points_per_s"],
            r["latency_ms"]["p50"],
            r["latency_ms"]["p99"],
            r["forward_points_per_s"]
                .as_f64()
                .map(|v| format!("{v:.0} ({} s)", r["queue_empty_after_s"]))
                .unwrap_or_else(|| "-".into()),
        );
    }
    Ok(())
}
