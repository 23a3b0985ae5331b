//! Crash durability: whatever was acknowledged survives `kill -9`.
//!
//! Four client threads post OTLP/HTTP protobuf metrics requests of 100 points each
//! (`testkit::load_request`: 20 sessions × cost + 4 token types, every request new sessions) as
//! fast as the server answers. After about two seconds the server gets SIGKILL mid-load. It is
//! started again on the same data dir, and the stored totals must lie between what was
//! acknowledged (200 with no partial-success refusal) and that plus the requests that were sent
//! but never answered (they may or may not have been committed).
//!
//! Each request carries exactly 42 000 input tokens, so the input-token total says precisely how
//! many requests landed; every other figure must then agree with that count.
//!
//! SIGKILL ends the process, not the machine: this proves the ack-after-commit order and that a
//! killed writer leaves a database SQLite recovers, not fsync behaviour on power loss.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use prost::Message;
use tokentray_core::testkit;

#[path = "support/mod.rs"]
mod support;

use support::{prom, Serve};

const THREADS: u64 = 4;
const POINTS: usize = 100;
/// Sessions per request: a cost point and four token points each.
const SESSIONS: u64 = 20;
const LOAD_FOR: Duration = Duration::from_secs(2);
const MIN_ACKED: u64 = 20;
const MAX_WAIT: Duration = Duration::from_secs(20);

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[derive(Default)]
struct Counts {
    /// 200 with nothing refused.
    acked: AtomicU64,
    /// Sent but not answered (error, timeout, connection reset by the kill).
    unanswered: AtomicU64,
    /// Answered with anything other than a clean 200 before the kill: must not happen.
    refused: AtomicU64,
}

fn load(
    url: String,
    thread: u64,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    errors: Arc<Mutex<Vec<String>>>,
) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let mut i: u64 = 0;
    // Bounded in count as well as in time.
    while !stop.load(Ordering::Relaxed) && i < 1_000_000 {
        let first_session = (thread * 1_000_000 + i) * SESSIONS;
        let body = testkit::load_request(POINTS, first_session as usize, now_ns()).encode_to_vec();
        i += 1;
        let resp =
            client.post(&url).header("content-type", "application/x-protobuf").body(body).send();
        match resp {
            Ok(r) if r.status() == reqwest::StatusCode::OK => match r.bytes() {
                Ok(bytes) => {
                    let answer = ExportMetricsServiceResponse::decode(bytes.as_ref())
                        .expect("decode the export response");
                    match answer.partial_success {
                        Some(p) if p.rejected_data_points != 0 => {
                            counts.refused.fetch_add(1, Ordering::Relaxed);
                            errors.lock().unwrap().push(format!("partial success: {p:?}"));
                        }
                        _ => {
                            counts.acked.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                // The status arrived but the body did not: treat as unanswered (may have landed).
                Err(_) => {
                    counts.unanswered.fetch_add(1, Ordering::Relaxed);
                }
            },
            Ok(r) => {
                counts.refused.fetch_add(1, Ordering::Relaxed);
                let status = r.status();
                errors
                    .lock()
                    .unwrap()
                    .push(format!("HTTP {status}: {}", r.text().unwrap_or_default()));
            }
            Err(_) => {
                counts.unanswered.fetch_add(1, Ordering::Relaxed);
                // Connection refused or reset: the server is gone; stop once told so.
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

#[test]
fn acknowledged_points_survive_kill_9() {
    let started = Instant::now();
    let mut serve = Serve::start();
    let url = format!("http://{}/v1/metrics", serve.http);

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let errors = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (url, stop, counts, errors) =
                (url.clone(), stop.clone(), counts.clone(), errors.clone());
            std::thread::spawn(move || load(url, t, stop, counts, errors))
        })
        .collect();

    // At least LOAD_FOR of load and some acknowledged requests (a slow machine gets longer, up
    // to MAX_WAIT), so the kill lands in the middle of sustained writing.
    let t0 = Instant::now();
    while (t0.elapsed() < LOAD_FOR || counts.acked.load(Ordering::Relaxed) < MIN_ACKED)
        && t0.elapsed() < MAX_WAIT
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let acked_before_kill = counts.acked.load(Ordering::Relaxed);
    serve.kill9();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("load thread");
    }
    let serve_stderr = serve.stderr();
    let acked = counts.acked.load(Ordering::Relaxed);
    let unanswered = counts.unanswered.load(Ordering::Relaxed);
    let refused = counts.refused.load(Ordering::Relaxed);
    assert_eq!(
        refused,
        0,
        "requests refused while the server was up: {:?}\n{serve_stderr}",
        errors.lock().unwrap()
    );
    assert!(
        acked_before_kill > 0,
        "no request was acknowledged in {:?}:\n{serve_stderr}",
        t0.elapsed()
    );
    eprintln!(
        "kill -9 after {:.1?} of load: {acked} requests acknowledged, {unanswered} unanswered",
        t0.elapsed()
    );

    // Same data dir, new process: SQLite recovers the WAL; /metrics is rebuilt from it.
    serve.start_again();
    let report = serve.report(&["all", "--json"]);
    let f = |path: &[&str]| -> f64 {
        let mut v = &report;
        for p in path {
            v = &v[*p];
        }
        v.as_f64().unwrap_or_else(|| panic!("report has no number at {path:?}:\n{report:#}"))
    };
    let u = testkit::Usage::TYPICAL;
    let per_request_input = SESSIONS as f64 * u.input;
    let input = f(&["tokens", "input"]);
    let landed = input / per_request_input;
    assert_eq!(
        landed.fract(),
        0.0,
        "input tokens {input} are not a whole number of requests of {per_request_input}"
    );
    let landed = landed as u64;
    eprintln!("after restart: {landed} requests stored");
    assert!(
        landed >= acked,
        "LOST ACKNOWLEDGED DATA: {acked} requests acknowledged but only {landed} stored\n{report:#}\n{serve_stderr}"
    );
    assert!(
        landed <= acked + unanswered,
        "more stored ({landed}) than sent ({acked} acknowledged + {unanswered} unanswered)\n{report:#}"
    );

    // Every figure agrees with the number of requests that landed.
    let n = landed as f64;
    let s = SESSIONS as f64;
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-12);
    assert_eq!(f(&["tokens", "output"]), n * s * u.output);
    assert_eq!(f(&["tokens", "cacheRead"]), n * s * u.cache_read);
    assert_eq!(f(&["tokens", "cacheCreation"]), n * s * u.cache_creation);
    assert_eq!(
        f(&["tokens", "total"]),
        n * s * (u.input + u.output + u.cache_read + u.cache_creation)
    );
    assert!(
        close(f(&["cost_usd"]), n * s * u.cost_usd),
        "cost {} for {landed} requests",
        f(&["cost_usd"])
    );
    assert_eq!(f(&["metrics", "claude_code.token.usage"]), f(&["tokens", "total"]));

    // The restarted server's /metrics (rebuilt from series and series_state) agrees with the report
    // (summed from the usage table).
    let samples = prom::parse(&serve.scrape());
    let expo_input: f64 = prom::sum_by(&samples, "claude_code_token_usage_tokens_total", &["type"])
        .get(&vec!["input".to_string()])
        .copied()
        .unwrap_or(0.0);
    assert_eq!(expo_input, input, "/metrics input tokens after restart");
    let expo_cost = prom::sum(&samples, "claude_code_cost_usage_USD_total");
    assert!(
        close(expo_cost, f(&["cost_usd"])),
        "/metrics cost {expo_cost} vs report {}",
        f(&["cost_usd"])
    );
    drop(serve);
    eprintln!("kill9 test took {:.1?}", started.elapsed());
}
