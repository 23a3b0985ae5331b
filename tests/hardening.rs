//! Hardening of the receiver (issue 14): each test reproduces one defect found by attacking
//! `tokentray serve` as a black box, against the real binary.
//!
//! * two `serve` on one data dir: the second is refused and nothing acknowledged is lost;
//! * a non-monotonic point under a monotonic counter's name and attributes is refused, and so is
//!   a delta that would make a total infinite;
//! * an attribute named `__name__` (or `job`, `le`, …) never makes `/metrics` unscrapable;
//! * a client trickling its request head a byte a second (slow loris) is closed at the head
//!   deadline on every port.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, Metric, NumberDataPoint, Sum,
};
use prost::Message;
use tokentray_core::testkit::{self, kv, Usage};

#[path = "support/mod.rs"]
mod support;

use support::{approx_eq, prom, Serve};

fn now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos()
        as u64
}

/// Posts `req` as OTLP/HTTP protobuf; returns the status and the decoded answer.
fn post(serve: &Serve, req: &ExportMetricsServiceRequest) -> (u16, ExportMetricsServiceResponse) {
    let resp = reqwest::blocking::Client::new()
        .post(format!("http://{}/v1/metrics", serve.http))
        .header("content-type", "application/x-protobuf")
        .body(req.encode_to_vec())
        .timeout(Duration::from_secs(30))
        .send()
        .expect("POST /v1/metrics");
    let status = resp.status().as_u16();
    let body = resp.bytes().expect("read answer");
    let answer = ExportMetricsServiceResponse::decode(body.as_ref()).unwrap_or_default();
    (status, answer)
}

/// A one-point `Sum` metric of Claude Code's resource and scope.
fn sum_request(
    name: &str,
    unit: &str,
    monotonic: bool,
    attrs: Vec<opentelemetry_proto::tonic::common::v1::KeyValue>,
    value: f64,
) -> ExportMetricsServiceRequest {
    let now = now_ns();
    testkit::metrics_request(vec![Metric {
        name: name.into(),
        unit: unit.into(),
        description: "test".into(),
        data: Some(Data::Sum(Sum {
            data_points: vec![NumberDataPoint {
                attributes: attrs,
                start_time_unix_nano: now - 1_000_000_000,
                time_unix_nano: now,
                value: Some(number_data_point::Value::AsDouble(value)),
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Delta as i32,
            is_monotonic: monotonic,
        })),
        ..Default::default()
    }])
}

fn rejected(answer: &ExportMetricsServiceResponse) -> (i64, String) {
    answer
        .partial_success
        .as_ref()
        .map(|p| (p.rejected_data_points, p.error_message.clone()))
        .unwrap_or_default()
}

/// Cost as `/metrics` and `report` show it.
fn cost_both_ways(serve: &Serve) -> (f64, f64) {
    let expo = prom::sum(&prom::parse(&serve.scrape()), "claude_code_cost_usage_USD_total");
    let report = serve.report(&["all", "--json"]);
    (expo, report["cost_usd"].as_f64().unwrap_or(f64::NAN))
}

#[test]
fn a_second_serve_on_the_same_data_dir_is_refused_and_nothing_is_lost() {
    let mut first = Serve::start();
    for _ in 0..5 {
        support::post_usage(first.http, Usage::TYPICAL);
    }

    let second = support::serve::command(&first.data_dir, &first.config)
        .args(support::serve::SERVE_ON_PORT_0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn a second serve");
    let out = support::serve::output_within(
        second,
        Duration::from_secs(30),
        "a second serve on the same data dir",
    );
    let status = out.status;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(2), "second serve: {status}\n{stderr}");
    assert!(
        stderr.contains(&first.pid().to_string()),
        "the refusal names the running engine (pid {}): {stderr}",
        first.pid()
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening "),
        "the second serve listened"
    );

    // The first engine kept everything and keeps counting.
    for _ in 0..5 {
        support::post_usage(first.http, Usage::TYPICAL);
    }
    let want = 10.0 * Usage::TYPICAL.cost_usd;
    for phase in ["before restart", "after restart"] {
        let (expo, report) = cost_both_ways(&first);
        assert!(approx_eq(expo, want), "{phase}: /metrics cost {expo}, want {want}");
        assert!(approx_eq(report, want), "{phase}: report cost {report}, want {want}");
        if phase == "before restart" {
            first.restart();
        }
    }
}

/// Attributes of one cost series (Claude Code's shape, one session).
fn cost_attrs() -> Vec<opentelemetry_proto::tonic::common::v1::KeyValue> {
    let mut attrs = testkit::common_attrs("s-kind", "u");
    attrs.push(kv("model", testkit::MODEL));
    attrs
}

#[test]
fn a_point_of_another_kind_under_a_counters_name_is_refused_and_survives_restart() {
    let mut serve = Serve::start();
    let monotonic = sum_request("claude_code.cost.usage", "USD", true, cost_attrs(), 1.0);
    let (status, answer) = post(&serve, &monotonic);
    assert_eq!((status, rejected(&answer).0), (200, 0), "the counter point: {answer:?}");

    // Same name and attributes, isMonotonic=false, a negative delta: before, it drove the
    // counter from 1 to -4 (and Prometheus saw a counter going down).
    let up_down = sum_request("claude_code.cost.usage", "USD", false, cost_attrs(), -5.0);
    let (status, answer) = post(&serve, &up_down);
    let (count, reason) = rejected(&answer);
    assert_eq!((status, count), (200, 1), "the non-monotonic point is refused: {answer:?}");
    assert!(reason.contains("monotonic counter"), "the reason names the kind: {reason}");

    // Under another set of attributes too: the kind belongs to the Prometheus name.
    let mut other_attrs = cost_attrs();
    other_attrs.push(kv("type", "other"));
    let up_down = sum_request("claude_code.cost.usage", "USD", false, other_attrs, -5.0);
    let (_, answer) = post(&serve, &up_down);
    assert_eq!(rejected(&answer).0, 1, "non-monotonic point on new attributes: {answer:?}");

    for phase in ["before restart", "after restart"] {
        let (expo, report) = cost_both_ways(&serve);
        assert!(approx_eq(expo, 1.0), "{phase}: /metrics cost {expo}, want 1");
        assert!(approx_eq(report, 1.0), "{phase}: report cost {report}, want 1");
        let (_, answer) = post(&serve, &up_down);
        assert_eq!(rejected(&answer).0, 1, "{phase}: the kind is remembered: {answer:?}");
        if phase == "before restart" {
            serve.restart();
        }
    }
}

#[test]
fn a_delta_that_would_make_a_total_infinite_is_refused() {
    let mut serve = Serve::start();
    let big = sum_request("claude_code.cost.usage", "USD", true, cost_attrs(), 1e308);
    let (status, answer) = post(&serve, &big);
    assert_eq!((status, rejected(&answer).0), (200, 0), "the first 1e308: {answer:?}");
    let (status, answer) = post(&serve, &big);
    let (count, reason) = rejected(&answer);
    assert_eq!((status, count), (200, 1), "the second 1e308 is refused: {answer:?}");
    assert!(reason.contains("finite"), "the reason says why: {reason}");

    serve.restart();
    let (expo, report) = cost_both_ways(&serve);
    assert!(expo.is_finite() && approx_eq(expo, 1e308), "/metrics cost {expo}");
    assert!(report.is_finite() && approx_eq(report, 1e308), "report cost {report}");
}

/// A histogram point of one bucket boundary, with `attrs`.
fn histogram_request(
    name: &str,
    attrs: Vec<opentelemetry_proto::tonic::common::v1::KeyValue>,
) -> ExportMetricsServiceRequest {
    use opentelemetry_proto::tonic::metrics::v1::{Histogram, HistogramDataPoint};
    let now = now_ns();
    testkit::metrics_request(vec![Metric {
        name: name.into(),
        unit: "s".into(),
        description: "test".into(),
        data: Some(Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                attributes: attrs,
                start_time_unix_nano: now - 1_000_000_000,
                time_unix_nano: now,
                count: 3,
                sum: Some(12.0),
                bucket_counts: vec![1, 2],
                explicit_bounds: vec![5.0],
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Delta as i32,
        })),
        ..Default::default()
    }])
}

#[test]
fn attributes_named_like_reserved_or_own_labels_never_stop_prometheus() {
    use support::prometheus::{promtool_check, Prometheus};
    let serve = Serve::start();
    let prometheus = Prometheus::start(serve.metrics);

    // Before: `__name__` became a label and Prometheus marked the target down for good
    // (`label name "__name__" is not unique: invalid sample`); `job` was merged with the job.
    let mut attrs = cost_attrs();
    for key in ["__name__", "job", "instance", "otel.scope.name", "otel_scope_version", "__x"] {
        attrs.push(kv(key, "from-an-attribute"));
    }
    let (status, answer) =
        post(&serve, &sum_request("claude_code.cost.usage", "USD", true, attrs, 1.0));
    assert_eq!((status, rejected(&answer).0), (200, 0), "the point is kept: {answer:?}");
    let mut attrs = cost_attrs();
    attrs.push(kv("le", "from-an-attribute"));
    let (status, answer) = post(&serve, &histogram_request("claude_code.test.duration", attrs));
    assert_eq!((status, rejected(&answer).0), (200, 0), "the histogram is kept: {answer:?}");

    let body = serve.scrape();
    promtool_check(&body);
    assert!(!body.contains("from-an-attribute"), "an attribute shadowed a label:\n{body}");
    let samples = prom::parse(&body);
    assert!(approx_eq(prom::sum(&samples, "claude_code_cost_usage_USD_total"), 1.0), "{body}");

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = prometheus.query_one("up");
        let cost = prometheus.query_one("sum(claude_code_cost_usage_USD_total)");
        if up == Some(1.0) && cost.is_some_and(|c| approx_eq(c, 1.0)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus: up {up:?}, cost {cost:?}\n{}\n{}",
            prometheus.targets(),
            prometheus.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let job = prometheus.query_by("claude_code_cost_usage_USD_total", "job");
    assert_eq!(job.keys().collect::<Vec<_>>(), ["claude-code"], "the job is the service's");
}

/// GET `path` on the metrics listener with extra headers; (status, body).
fn get(serve: &Serve, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = reqwest::blocking::Client::new()
        .get(format!("http://{}{path}", serve.metrics))
        .timeout(Duration::from_secs(10));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().expect("GET");
    (resp.status().as_u16(), resp.text().unwrap_or_default())
}

#[test]
fn metrics_and_the_dashboard_api_refuse_a_foreign_host() {
    let serve = Serve::start();
    support::post_usage(serve.http, Usage::TYPICAL);
    // Before: /metrics answered any Host, so a DNS-rebinding page could read it.
    for path in ["/metrics", "/api/dashboard"] {
        let (status, body) = get(&serve, path, &[("host", "rebound.evil.example")]);
        assert_eq!(status, 403, "{path} with a foreign Host: {body}");
        assert!(body.contains("Host header refused"), "{body}");
        let (status, _) = get(&serve, path, &[("host", "localhost")]);
        assert_eq!(status, 200, "{path} with Host localhost");
    }
}

#[test]
fn metrics_require_header_admits_prometheus_with_its_credentials_file() {
    use support::prometheus::Prometheus;
    let secrets = support::tempdir("tokentray-scrape-token-");
    let token = secrets.path().join("token");
    std::fs::write(&token, "scrape-s3cr3t\n").expect("write token");
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod 600");
    let serve = Serve::start_with(support::serve::ServeOptions {
        config_toml: Some(format!(
            "[metrics]\nrequire_header = \"Authorization=@file:{}\"\n",
            token.display()
        )),
        ..Default::default()
    });
    support::post_usage(serve.http, Usage::TYPICAL);

    for path in ["/metrics", "/api/dashboard"] {
        let (status, body) = get(&serve, path, &[]);
        assert_eq!(status, 401, "{path} without the header: {body}");
        let (status, body) = get(&serve, path, &[("authorization", "Bearer wrong")]);
        assert_eq!(status, 401, "{path} with a wrong token: {body}");
        assert!(!body.contains("scrape-s3cr3t"), "the refusal shows the secret: {body}");
        let (status, _) = get(&serve, path, &[("authorization", "Bearer scrape-s3cr3t")]);
        assert_eq!(status, 200, "{path} with the token");
    }

    let prometheus = Prometheus::start_with_credentials(serve.metrics, &token);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = prometheus.query_one("up");
        let cost = prometheus.query_one("sum(claude_code_cost_usage_USD_total)");
        if up == Some(1.0) && cost.is_some_and(|c| approx_eq(c, Usage::TYPICAL.cost_usd)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus with credentials_file: up {up:?}, cost {cost:?}\n{}",
            prometheus.targets()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A cost point carrying `n` extra attributes.
fn wide_request(n: usize) -> ExportMetricsServiceRequest {
    let mut attrs = cost_attrs();
    attrs.extend((0..n).map(|i| kv(&format!("attr.{i}"), "v")));
    sum_request("claude_code.cost.usage", "USD", true, attrs, 1.0)
}

/// Posts a 50k-attribute point while a second client keeps posting small ones; returns the wide
/// request's answer, its duration and the slowest small request. Every request has a generous
/// client timeout (30 s): a stall fails the test, the figures go to BENCHMARKS.md.
fn wide_point_beside_small_ones(
    serve: &Serve,
) -> (ExportMetricsServiceResponse, Duration, Duration) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let small = std::thread::spawn({
        let (stop, http) = (stop.clone(), serve.http);
        move || {
            let mut slowest = Duration::ZERO;
            let mut n = 0;
            while n < 5 || !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                support::post_usage(http, Usage::TYPICAL);
                slowest = slowest.max(started.elapsed());
                n += 1;
            }
            slowest
        }
    });
    let wide = wide_request(50_000);
    let started = Instant::now();
    let (status, answer) = post(serve, &wide);
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(status, 200, "the wide request: {answer:?}");
    let slowest = small.join().expect("small client");
    (answer, took, slowest)
}

#[test]
fn a_50k_attribute_point_is_refused_at_once_and_others_keep_going() {
    let serve = Serve::start();
    // Before: 4.1 s of the writer for this one point, and a small request beside it waited 4 s.
    let (answer, took, slowest) = wide_point_beside_small_ones(&serve);
    let (count, reason) = rejected(&answer);
    assert_eq!(count, 1, "the wide point is refused: {answer:?}");
    assert!(reason.contains("max_attributes"), "the reason names the limit: {reason}");
    println!("default limits: 50k-attribute point answered in {took:?}; slowest small request {slowest:?}");
    let (expo, report) = cost_both_ways(&serve);
    assert!(approx_eq(expo, report), "/metrics {expo} vs report {report}");

    // With the limits raised, the same point is stored, in linear time.
    let serve = Serve::start_with(support::serve::ServeOptions {
        config_toml: Some(
            "[receiver]\nmax_attributes = 100000\nmax_label_set_bytes = 100000000\n".into(),
        ),
        ..Default::default()
    });
    let (answer, took, slowest) = wide_point_beside_small_ones(&serve);
    assert_eq!(rejected(&answer).0, 0, "accepted with raised limits: {answer:?}");
    println!(
        "raised limits: 50k-attribute point stored in {took:?}; slowest small request {slowest:?}"
    );
    let body = serve.scrape();
    assert!(body.contains("attr_49999=\"v\""), "the wide series is shown");
}

/// Serve with short connection timeouts and `max_per_port`.
fn serve_with_connections(timeout_seconds: f64, max_per_port: usize) -> Serve {
    Serve::start_with(support::serve::ServeOptions {
        config_toml: Some(format!(
            "[connections]\nheader_timeout_seconds = {timeout_seconds}\nidle_timeout_seconds = {timeout_seconds}\nmax_per_port = {max_per_port}\n"
        )),
        ..Default::default()
    })
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn five_thousand_idle_connections_are_closed_by_the_timeout_while_a_client_keeps_working() {
    use std::io::Read;
    let serve = serve_with_connections(2.0, 10_000);
    // Before: none of these was ever closed; ~20,000 filled the descriptor limit.
    let ports = [(serve.http, 2000), (serve.grpc, 2000), (serve.metrics, 1000)];
    let idle: Vec<std::net::TcpStream> = ports
        .iter()
        .flat_map(|&(addr, n)| (0..n).map(move |_| addr))
        .map(|addr| std::net::TcpStream::connect(addr).expect("connect an idle client"))
        .collect();
    assert_eq!(idle.len(), 5000);
    // A working client meanwhile, on new connections.
    for _ in 0..5 {
        support::post_usage(serve.http, Usage::TYPICAL);
    }
    for (i, mut conn) in idle.into_iter().enumerate() {
        conn.set_read_timeout(Some(Duration::from_secs(60))).expect("read timeout");
        // Until the server closes it (the gRPC port sends its HTTP/2 settings first).
        let mut buf = [0u8; 256];
        loop {
            match conn.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("idle connection #{i} not closed by the server: {e}"),
            }
        }
    }
    let (expo, report) = cost_both_ways(&serve);
    assert!(approx_eq(expo, 5.0 * Usage::TYPICAL.cost_usd), "/metrics cost {expo}");
    assert!(approx_eq(report, expo), "report cost {report}");
    let files = open_files(serve.pid());
    assert!(files < 200, "serve still holds {files} descriptors");
}

#[test]
fn past_the_per_port_cap_a_connection_is_refused_clearly() {
    let serve = serve_with_connections(60.0, 20);
    let held: Vec<std::net::TcpStream> =
        (0..20).map(|_| std::net::TcpStream::connect(serve.metrics).expect("connect")).collect();
    let (status, body) = get(&serve, "/metrics", &[]);
    assert_eq!(status, 503, "over the cap: {body}");
    assert!(body.contains("max_per_port"), "the refusal says why: {body}");
    // The other ports have caps of their own.
    support::post_usage(serve.http, Usage::TYPICAL);
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = get(&serve, "/metrics", &[]);
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "/metrics still refused after the clients left");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `Max open files` of a process: (soft, hard).
fn nofile(pid: &str) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("read limits");
    let line = limits.lines().find(|l| l.starts_with("Max open files")).expect("nofile line");
    let mut fields = line["Max open files".len()..].split_whitespace();
    (fields.next().unwrap_or("").into(), fields.next().unwrap_or("").into())
}

#[test]
fn serve_raises_its_open_file_limit_to_the_hard_limit() {
    use std::io::BufRead;
    let (_, hard) = nofile("self");
    let tmp = support::tempdir("tokentray-nofile-");
    let mut child = std::process::Command::new(support::prometheus::require_tool("prlimit"))
        .arg(format!("--nofile=256:{hard}"))
        .arg(support::serve::bin())
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .arg("--config")
        .arg(tmp.path().join("none.toml"))
        .args(support::serve::SERVE_ON_PORT_0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve under prlimit");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let limits = nofile(&child.id().to_string());
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with("listening "), "serve did not start: {line:?}");
    assert_eq!(limits, (hard.clone(), hard), "soft limit raised from 256 to the hard limit");
}

/// `serve` with its data dir on a tmpfs of `size` in a private mount namespace (`unshare -m`:
/// a real full disk, as root in CI, without touching the host's mounts). Killed on drop.
struct ServeOnTmpfs {
    child: std::process::Child,
    http: std::net::SocketAddr,
    metrics: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl ServeOnTmpfs {
    fn start(size: &str) -> ServeOnTmpfs {
        let dir = support::tempdir("tokentray-tmpfs-");
        let mount_point = dir.path().join("disk");
        std::fs::create_dir(&mount_point).expect("mount point");
        let script = r#"mount -t tmpfs -o "size=$1" tmpfs "$2" && exec "$3" --data-dir "$2/data" --config "$2/none.toml" serve --otlp-grpc 127.0.0.1:0 --otlp-http 127.0.0.1:0 --metrics 127.0.0.1:0"#;
        let mut cmd = std::process::Command::new(support::prometheus::require_tool("unshare"));
        cmd.args(["-m", "--propagation", "private", "sh", "-c", script, "sh", size])
            .arg(&mount_point)
            .arg(support::serve::bin())
            .stderr(Stdio::null());
        let (child, (_, http, metrics)) = support::serve::spawn_listening(cmd, "serve on a tmpfs");
        ServeOnTmpfs { child, http, metrics, _dir: dir }
    }
}

impl Drop for ServeOnTmpfs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn failed_commits_on_a_full_disk_leave_no_phantom_series() {
    let serve = ServeOnTmpfs::start("1m");
    let client = reqwest::blocking::Client::new();
    let (mut acknowledged, mut failed, mut first_session) = (0u64, 0u64, 0usize);
    // New sessions in every request until the disk is full, then a few more that fail.
    while failed < 5 && first_session < 200_000 {
        let req = testkit::load_request(100, first_session, now_ns());
        first_session += 20;
        let resp = client
            .post(format!("http://{}/v1/metrics", serve.http))
            .header("content-type", "application/x-protobuf")
            .body(req.encode_to_vec())
            .timeout(Duration::from_secs(30))
            .send()
            .expect("POST");
        match resp.status().as_u16() {
            200 => acknowledged += 1,
            503 => failed += 1,
            other => panic!("unexpected status {other}: {}", resp.text().unwrap_or_default()),
        }
    }
    assert!(failed >= 5, "the 1 MiB disk never filled ({acknowledged} requests stored)");
    let body = reqwest::blocking::get(format!("http://{}/metrics", serve.metrics))
        .and_then(|r| r.text())
        .expect("GET /metrics");
    // Before: each failed request left its 20 new cost series at 0 in /metrics.
    let cost_series = prom::count(&prom::parse(&body), "claude_code_cost_usage_USD_total");
    assert_eq!(
        cost_series as u64,
        20 * acknowledged,
        "{acknowledged} requests stored, {failed} refused: one cost series per stored session"
    );
}

/// Sends `first` at once, then `trickle` one byte a second, reading what the server answers in
/// between, until the server closes the connection; panics if it is still open after `bound`.
/// Returns what the server sent.
fn slow_loris(
    addr: std::net::SocketAddr,
    first: &[u8],
    trickle: &[u8],
    bound: Duration,
) -> Vec<u8> {
    use std::io::{ErrorKind, Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).expect("connect the slow client");
    conn.set_read_timeout(Some(Duration::from_secs(1))).expect("read timeout");
    conn.write_all(first).expect("first bytes");
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // Never silent for a second, so the idle timeout never fires.
    for &byte in trickle.iter().cycle() {
        assert!(
            started.elapsed() < bound,
            "{addr}: a client sending its request head one byte a second still holds its connection after {bound:?}"
        );
        match conn.write_all(&[byte]) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {
                return answer;
            }
            Err(e) => panic!("{addr}: write: {e}"),
        }
        match conn.read(&mut buf) {
            Ok(0) => return answer,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return answer,
            Err(e) => panic!("{addr}: read: {e}"),
        }
    }
    unreachable!("the trickle cycles forever")
}

/// One export over OTLP/gRPC, as an SDK sends it; panics unless it is accepted.
fn export_over_grpc(addr: std::net::SocketAddr) {
    use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let mut client = MetricsServiceClient::connect(format!("http://{addr}"))
            .await
            .expect("connect over gRPC");
        client.export(testkit::load_request(1, 0, now_ns())).await.expect("gRPC export accepted");
    });
}

#[test]
fn a_client_sending_its_request_head_a_byte_a_second_is_closed_at_the_head_deadline() {
    let serve = Serve::start_with(support::serve::ServeOptions {
        config_toml: Some(
            "[connections]\nrequest_head_timeout_seconds = 2\nheader_timeout_seconds = 60\nidle_timeout_seconds = 60\n"
                .into(),
        ),
        ..Default::default()
    });
    // Far past the 2 s deadline, far below the 60 s idle timeout it never reaches.
    let bound = Duration::from_secs(40);
    let head = b"POST /v1/metrics HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-protobuf\r\nx-padding: ".to_vec();
    let (http, metrics, grpc) = (serve.http, serve.metrics, serve.grpc);
    let lorises = [
        std::thread::spawn(move || slow_loris(http, b"P", &head[1..], bound)),
        std::thread::spawn(move || {
            slow_loris(metrics, b"G", b"ET /metrics HTTP/1.1\r\nx-padding: aaaaaaaa", bound)
        }),
        // The HTTP/2 preface and an empty SETTINGS frame, then a HEADERS frame that never ends.
        std::thread::spawn(move || {
            let mut first = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
            first.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
            first.extend_from_slice(&[0, 0x40, 0, 0x1, 0x4, 0, 0, 0, 1]);
            slow_loris(grpc, &first, &[0x40, 0x01, b'x'], bound)
        }),
    ];
    // Meanwhile normal clients are served on every port.
    support::post_usage(serve.http, Usage::TYPICAL);
    export_over_grpc(serve.grpc);
    assert!(serve.scrape().contains("claude_code_cost_usage_USD_total"), "/metrics answers");
    for loris in lorises {
        let answer = loris.join().expect("slow client thread");
        let text = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || !text.starts_with("HTTP/1.1 ") || text.starts_with("HTTP/1.1 408"),
            "closed without an answer, or with 408: {text}"
        );
    }
    // And after them.
    support::post_usage(serve.http, Usage::TYPICAL);
    export_over_grpc(serve.grpc);
    assert!(serve.scrape().contains("claude_code_cost_usage_USD_total"), "/metrics answers");
}
