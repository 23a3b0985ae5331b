//! `tokentray doctor`: every failure it names is produced for real (nothing running, a port held
//! by another program, Claude Code's protocol sent to the wrong port, no data yet) and gives its
//! own message and exit code; with all of it fixed it says so and exits 0.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use support::{free_port, tempdir, Serve};
use tokentray_core::testkit;

/// A HOME for Claude Code's settings and a config file naming the ports.
struct Machine {
    dir: tempfile::TempDir,
}

impl Machine {
    fn new() -> Machine {
        let m = Machine { dir: tempdir("tokentray-doctor-") };
        std::fs::create_dir_all(m.home().join(".claude")).expect("mkdir");
        m
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    fn listen(&self, grpc: &str, http: &str, metrics: &str) {
        std::fs::write(self.config(), format!("[listen]\notlp_grpc = \"{grpc}\"\notlp_http = \"{http}\"\nmetrics = \"{metrics}\"\n")).expect("write config");
    }

    fn tokentray(&self, data_dir: &Path, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokentray"));
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("TOKENTRAY_") || k.starts_with("OTEL_") || k.starts_with("CLAUDE_") {
                cmd.env_remove(&k);
            }
        }
        cmd.env("HOME", self.home())
            .env("TOKENTRAY_CLAUDE_MANAGED_SETTINGS", self.dir.path().join("no-managed.json"))
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--config")
            .arg(self.config())
            .args(args)
            .output()
            .expect("run tokentray")
    }

    fn doctor(&self, data_dir: &Path) -> (i32, String) {
        let out = self.tokentray(data_dir, &["doctor"]);
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}

/// The `FAIL` lines of a report.
fn failures(report: &str) -> Vec<&str> {
    report.lines().filter(|l| l.trim_start().starts_with("FAIL")).collect()
}

#[test]
fn engine_down_is_exit_11() {
    let m = Machine::new();
    let (g, h, p) = (free_port(), free_port(), free_port());
    m.listen(&format!("127.0.0.1:{g}"), &format!("127.0.0.1:{h}"), &format!("127.0.0.1:{p}"));
    let data = m.dir.path().join("data");
    let (code, report) = m.doctor(&data);
    assert_eq!(code, 11, "{report}");
    assert!(
        report.contains(&format!("no tokentray answers at 127.0.0.1:{p}"))
            && report.contains("`tokentray serve`"),
        "{report}"
    );
    assert!(report.contains(&format!("127.0.0.1:{g} (OTLP/gRPC) is free")), "{report}");
}

#[test]
fn a_port_held_by_another_program_is_named_with_exit_10() {
    let m = Machine::new();
    let (g, h, p) = (free_port(), free_port(), free_port());
    m.listen(&format!("127.0.0.1:{g}"), &format!("127.0.0.1:{h}"), &format!("127.0.0.1:{p}"));
    // Another program (here Python's web server) sits on the gRPC port.
    let mut other: Child = Command::new("python3")
        .args(["-m", "http.server", &g.to_string(), "--bind", "127.0.0.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 (on every Debian/Ubuntu machine this runs on)");
    let listening = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(25));
        std::net::TcpStream::connect(("127.0.0.1", g)).is_ok()
    });
    assert!(listening, "python3 http.server did not start");
    let (code, report) = m.doctor(&m.dir.path().join("data"));
    let _ = other.kill();
    let _ = other.wait();
    assert_eq!(code, 10, "{report}");
    let line = failures(&report)
        .into_iter()
        .find(|l| l.contains(&format!(":{g} (OTLP/gRPC)")))
        .unwrap_or_else(|| panic!("no FAIL for the port:\n{report}"));
    assert!(line.contains(&format!("is held by python3 (pid {})", other.id())), "{line}\n{report}");
    assert!(report.contains("--otlp-grpc / [listen] otlp_grpc"), "{report}");
}

#[test]
fn protocol_sent_to_the_wrong_port_is_exit_12_then_no_data_13_then_all_good() {
    let m = Machine::new();
    let serve = Serve::start();
    m.listen(&serve.grpc.to_string(), &serve.http.to_string(), &serve.metrics.to_string());

    // http/protobuf pointed at the gRPC port: a classic of the Docker-stack guides.
    let settings = m.home().join(".claude/settings.json");
    std::fs::write(
        &settings,
        format!(
            r#"{{"env": {{"CLAUDE_CODE_ENABLE_TELEMETRY": "1", "OTEL_METRICS_EXPORTER": "otlp", "OTEL_LOGS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:{}"}}}}"#,
            serve.grpc.port()
        ),
    )
    .expect("write settings");
    let (code, report) = m.doctor(&serve.data_dir);
    assert_eq!(code, 12, "{report}");
    assert!(
        report.contains(&format!(
            "protocol http/protobuf is sent to port {}, tokentray's OTLP/gRPC port",
            serve.grpc.port()
        )),
        "{report}"
    );
    assert!(report.contains("fix: run `tokentray setup`"), "{report}");
    assert!(
        report.contains(&format!("{} (OTLP/gRPC) is tokentray's", serve.grpc)),
        "the engine's own ports are recognised:\n{report}"
    );

    // Fixed with setup: now the only failure is that nothing arrived yet.
    let out = m.tokentray(&serve.data_dir, &["setup"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (code, report) = m.doctor(&serve.data_dir);
    assert_eq!(code, 13, "{report}");
    assert_eq!(failures(&report).len(), 1, "{report}");
    assert!(report.contains("nothing received yet"), "{report}");

    // Data arrives (as Claude Code would send it): all good.
    support::post_usage(serve.http, testkit::Usage::TYPICAL);
    let (code, report) = m.doctor(&serve.data_dir);
    assert_eq!(code, 0, "{report}");
    assert!(report.contains("last received") && report.contains("from claude-code"), "{report}");
    assert!(
        report.contains("passes SQLite's quick_check") && report.contains("All good"),
        "{report}"
    );
}

/// `doctor --json` as a script reads it.
fn doctor_json(m: &Machine, data_dir: &Path) -> (i32, serde_json::Value) {
    let out = m.tokentray(data_dir, &["doctor", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code().unwrap_or(-1), v)
}

fn check<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no {name} check: {v}"))
}

#[test]
fn an_engine_on_other_ports_is_found_through_its_lock_file() {
    let m = Machine::new();
    // The config names ports nobody listens on; the engine runs on ports 0 chose.
    let (g, h, p) = (free_port(), free_port(), free_port());
    m.listen(&format!("127.0.0.1:{g}"), &format!("127.0.0.1:{h}"), &format!("127.0.0.1:{p}"));
    let serve = Serve::start();
    std::fs::write(
        m.home().join(".claude/settings.json"),
        format!(
            r#"{{"env": {{"CLAUDE_CODE_ENABLE_TELEMETRY": "1", "OTEL_METRICS_EXPORTER": "otlp", "OTEL_LOGS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:{}"}}}}"#,
            serve.grpc.port()
        ),
    )
    .expect("write settings");
    let (code, v) = doctor_json(&m, &serve.data_dir);
    let engine = check(&v, "engine");
    assert_eq!(engine["status"], "ok", "{v}");
    assert!(
        engine["detail"].as_str().unwrap_or("").contains(&format!("pid {}", serve.pid())),
        "{v}"
    );
    assert_eq!(
        check(&v, "Claude Code settings")["status"],
        "ok",
        "settings checked against the engine's ports: {v}"
    );
    assert_eq!(check(&v, "data directory")["status"], "ok", "{v}");
    assert_eq!(code, 13, "only 'nothing received yet' is left: {v}");
    assert_eq!(v["exit_code"], 13);
}

#[test]
fn a_data_dir_that_is_a_file_or_missing_is_exit_15_without_advice_to_move_history() {
    let m = Machine::new();
    let (g, h, p) = (free_port(), free_port(), free_port());
    m.listen(&format!("127.0.0.1:{g}"), &format!("127.0.0.1:{h}"), &format!("127.0.0.1:{p}"));
    let file = m.dir.path().join("data");
    std::fs::write(&file, "x").expect("write");
    let (_, v) = doctor_json(&m, &file);
    let dir = check(&v, "data directory");
    assert_eq!(
        (dir["status"].as_str(), dir["exit_code"].as_u64()),
        (Some("fail"), Some(15)),
        "{v}"
    );
    assert!(dir["detail"].as_str().unwrap_or("").contains("is a file"), "{v}");
    let missing = m.dir.path().join("dtaa");
    let (_, v) = doctor_json(&m, &missing);
    assert!(
        check(&v, "data directory")["detail"].as_str().unwrap_or("").contains("does not exist"),
        "{v}"
    );
    assert!(!missing.exists(), "doctor creates nothing");
    assert!(!v.to_string().contains("aside"), "{v}");
}

/// Posts one counter point with `attrs` over OTLP/HTTP protobuf; panics unless it is accepted.
fn post_counter_with(http: std::net::SocketAddr, attrs: &[(&str, &str)]) {
    use opentelemetry_proto::tonic::metrics::v1::{
        metric::Data, number_data_point, AggregationTemporality, Metric, NumberDataPoint, Sum,
    };
    use prost::Message;
    let now = support::now_ns();
    let point = NumberDataPoint {
        attributes: attrs.iter().map(|(k, v)| testkit::kv(k, v)).collect(),
        start_time_unix_nano: now - 1_000_000_000,
        time_unix_nano: now,
        value: Some(number_data_point::Value::AsDouble(1.0)),
        ..Default::default()
    };
    let req = testkit::metrics_request(vec![Metric {
        name: "claude_code.cost.usage".into(),
        unit: "USD".into(),
        description: "test".into(),
        data: Some(Data::Sum(Sum {
            data_points: vec![point],
            aggregation_temporality: AggregationTemporality::Delta as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    }]);
    let resp = reqwest::blocking::Client::new()
        .post(format!("http://{http}/v1/metrics"))
        .header("content-type", "application/x-protobuf")
        .body(req.encode_to_vec())
        .timeout(Duration::from_secs(30))
        .send()
        .expect("POST /v1/metrics");
    assert_eq!(resp.status().as_u16(), 200, "{:?}", resp.text());
}

#[test]
fn attributes_dropped_from_metrics_labels_are_counted_and_said() {
    let m = Machine::new();
    let serve = Serve::start();
    m.listen(&serve.grpc.to_string(), &serve.http.to_string(), &serve.metrics.to_string());
    let out = m.tokentray(&serve.data_dir, &["setup"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    support::post_usage(serve.http, testkit::Usage::TYPICAL);
    let (code, report) = m.doctor(&serve.data_dir);
    assert_eq!(code, 0, "{report}");
    assert!(!report.contains("dropped from /metrics"), "nothing dropped yet:\n{report}");

    // A sender whose attributes translate to a reserved label or one tokentray sets itself.
    post_counter_with(
        serve.http,
        &[("session.id", "s-2"), ("__name__", "x"), ("job", "x"), ("otel.scope.name", "x")],
    );
    let (code, report) = m.doctor(&serve.data_dir);
    let line = report
        .lines()
        .find(|l| l.contains("dropped from /metrics"))
        .unwrap_or_else(|| panic!("no line about the dropped attributes:\n{report}"));
    assert!(
        line.contains(
            "3 attributes were dropped from /metrics to keep Prometheus labels unique (e.g. __name__, job, otel_scope_name)"
        ),
        "{line}"
    );
    assert!(line.trim_start().starts_with("warn"), "a warning, not a failure: {line}");
    assert_eq!(code, 0, "the exit code stays 0:\n{report}");

    // Counted once per series: the same series again adds nothing; a new one adds its own.
    post_counter_with(
        serve.http,
        &[("session.id", "s-2"), ("__name__", "x"), ("job", "x"), ("otel.scope.name", "x")],
    );
    post_counter_with(serve.http, &[("session.id", "s-3"), ("__x", "x"), ("instance", "x")]);
    let (_, report) = m.doctor(&serve.data_dir);
    assert!(
        report.contains("5 attributes were dropped from /metrics to keep Prometheus labels unique (e.g. __name__, job, otel_scope_name, __x, instance)"),
        "{report}"
    );
}
