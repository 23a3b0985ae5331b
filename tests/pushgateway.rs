//! The Pushgateway API on the metrics port, end to end against a real `serve`: hook scripts'
//! `curl --data-binary @-`, the real Python client (`prometheus_client`'s `push_to_gateway`,
//! `pushadd_to_gateway`, `delete_from_gateway`) and a real Prometheus scraping with
//! `honor_labels: true`.
//!
//! Needs curl, `prometheus`/`promtool` and `prometheus_client` in tests/.cache/pushgateway-venv
//! (tests/setup.sh installs them); fails, never skips, without.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::prometheus::{promtool_check, require_tool, Prometheus};
use support::serve::ServeOptions;
use support::{prom, Serve};

/// `curl -X METHOD --data-binary @- URL` with `body` on stdin (as the hook scripts do), plus
/// extra curl arguments; the status code and the answer's text.
fn curl(method: &str, url: &str, body: Option<&[u8]>, extra: &[&str]) -> (u16, String) {
    require_tool("curl");
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-S", "-w", "\n%{http_code}", "-X", method]).args(extra);
    if body.is_some() {
        cmd.args(["--data-binary", "@-"]);
    }
    let mut child = cmd
        .arg(url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn curl");
    {
        let mut stdin = child.stdin.take().unwrap();
        if let Some(body) = body {
            stdin.write_all(body).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (answer, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    let code = code.trim().parse().unwrap_or_else(|_| {
        panic!("curl {method} {url}: no status ({})", String::from_utf8_lossy(&out.stderr))
    });
    (code, answer.to_string())
}

fn push_url(serve: &Serve, grouping: &str) -> String {
    format!("{}/{grouping}", serve.metrics_url())
}

fn now_s() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

/// The value of the sample `name` whose labels include every pair of `labels`, if exactly one.
fn value(samples: &[prom::Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.value)
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} matches {} samples", found.len());
    found.first().copied()
}

/// (The pushed bodies carry `# HELP` lines and lint-clean names: `promtool check metrics` also
/// lints what users push, and the checks here are about tokentray's exposition.)
///
/// The lines of a scrape that belong to pushed groups (tokentray's own output aside).
fn pushed_lines(scrape: &str) -> Vec<String> {
    scrape
        .lines()
        .filter(|l| l.contains("job=\"") || l.contains("push_"))
        .map(str::to_string)
        .collect()
}

const HOOK_BODY: &str = "# HELP hook_runs_total Runs of the exercise hook.\n# TYPE hook_runs_total counter\nhook_runs_total{kind=\"lint\"} 3\n# HELP hook_last_seconds When the hook last ran.\n# TYPE hook_last_seconds gauge\nhook_last_seconds 7.5\n";

#[test]
fn curl_put_post_delete_with_grouping_labels() {
    let serve = Serve::start();
    let url = push_url(&serve, "job/exercise/instance/x");
    let group = [("job", "exercise"), ("instance", "x")];

    let before = now_s();
    let (code, answer) = curl("PUT", &url, Some(HOOK_BODY.as_bytes()), &[]);
    let after = now_s();
    assert_eq!(code, 200, "PUT: {answer}\n{}", serve.stderr());
    let scrape = serve.scrape();
    promtool_check(&scrape);
    let samples = prom::parse(&scrape);
    assert_eq!(
        value(
            &samples,
            "hook_runs_total",
            &[("job", "exercise"), ("instance", "x"), ("kind", "lint")]
        ),
        Some(3.0),
        "{scrape}"
    );
    assert_eq!(value(&samples, "hook_last_seconds", &group), Some(7.5), "{scrape}");
    let pushed_at = value(&samples, "push_time_seconds", &group).expect("push_time_seconds");
    assert!(
        pushed_at >= before.floor() && pushed_at <= after.ceil(),
        "push_time_seconds {pushed_at} not within [{before}, {after}]"
    );
    assert_eq!(value(&samples, "push_failure_time_seconds", &group), Some(0.0));
    assert_eq!(scrape.matches("# TYPE hook_runs_total ").count(), 1, "{scrape}");

    // POST replaces only the metrics of the same name.
    let (code, answer) = curl("POST", &url, Some(b"# HELP hook_last_seconds Last run.\n# TYPE hook_last_seconds gauge\nhook_last_seconds 9\n"), &[]);
    assert_eq!(code, 200, "POST: {answer}");
    let samples = prom::parse(&serve.scrape());
    assert_eq!(value(&samples, "hook_runs_total", &group), Some(3.0));
    assert_eq!(value(&samples, "hook_last_seconds", &group), Some(9.0));

    // A second group beside it; PUT replaces the whole first group.
    let (code, _) = curl(
        "PUT",
        &push_url(&serve, "job/exercise/instance/y"),
        Some(b"# HELP hook_last_seconds Last run.\n# TYPE hook_last_seconds gauge\nhook_last_seconds 1\n"),
        &[],
    );
    assert_eq!(code, 200);
    let (code, _) = curl("PUT", &url, Some(b"# HELP hook_last_seconds Last run.\n# TYPE hook_last_seconds gauge\nhook_last_seconds 2\n"), &[]);
    assert_eq!(code, 200);
    let scrape = serve.scrape();
    promtool_check(&scrape);
    let samples = prom::parse(&scrape);
    assert_eq!(
        value(&samples, "hook_runs_total", &group),
        None,
        "PUT replaces the group:\n{scrape}"
    );
    assert_eq!(value(&samples, "hook_last_seconds", &group), Some(2.0));
    assert_eq!(value(&samples, "hook_last_seconds", &[("instance", "y")]), Some(1.0));
    assert_eq!(
        scrape.matches("# TYPE hook_last_seconds ").count(),
        1,
        "one TYPE per family:\n{scrape}"
    );

    // OpenMetrics (what Prometheus asks for) carries them too, before `# EOF`.
    let om = reqwest::blocking::Client::new()
        .get(serve.metrics_url())
        .header("Accept", "application/openmetrics-text;version=1.0.0")
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        om.ends_with("# EOF\n")
            && om.contains("hook_last_seconds{instance=\"y\",job=\"exercise\"} 1"),
        "{om}"
    );

    // DELETE removes the group and only that group.
    let (code, _) = curl("DELETE", &url, None, &[]);
    assert_eq!(code, 202);
    let samples = prom::parse(&serve.scrape());
    assert_eq!(value(&samples, "hook_last_seconds", &group), None);
    assert_eq!(value(&samples, "push_time_seconds", &group), None);
    assert_eq!(value(&samples, "hook_last_seconds", &[("instance", "y")]), Some(1.0));
}

#[test]
fn base64_grouping_values() {
    let serve = Serve::start();
    // "cron/nightly" and "/var/log/hooks" in URL-safe base64, the second without padding; an
    // empty value is `=`.
    let grouping = "job@base64/Y3Jvbi9uaWdodGx5/path@base64/L3Zhci9sb2cvaG9va3M/stage@base64/=";
    let (code, answer) = curl(
        "PUT",
        &push_url(&serve, grouping),
        Some(b"# HELP backup_ok Whether the backup worked.\nbackup_ok 1\n"),
        &[],
    );
    assert_eq!(code, 200, "{answer}");
    let scrape = serve.scrape();
    promtool_check(&scrape);
    let samples = prom::parse(&scrape);
    let group = [("job", "cron/nightly"), ("path", "/var/log/hooks")];
    assert_eq!(value(&samples, "backup_ok", &group), Some(1.0), "{scrape}");
    assert!(value(&samples, "push_time_seconds", &group).is_some(), "{scrape}");
    // The same group under the plain spelling of its values where that is possible.
    let (code, _) = curl("DELETE", &push_url(&serve, grouping), None, &[]);
    assert_eq!(code, 202);
    assert_eq!(value(&prom::parse(&serve.scrape()), "backup_ok", &group), None);
    // Not base64 at all: refused with the reason.
    let (code, answer) = curl("PUT", &push_url(&serve, "job@base64/!!!"), Some(b"x 1\n"), &[]);
    assert_eq!(code, 400);
    assert!(answer.contains("base64"), "{answer}");
}

fn python() -> PathBuf {
    let python =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/.cache/pushgateway-venv/bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import prometheus_client"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "{} with prometheus_client is missing: run tests/setup.sh", python.display());
    python
}

const PY_CLIENT: &str = r#"
import sys
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client import push_to_gateway, pushadd_to_gateway, delete_from_gateway

gateway, step = sys.argv[1], sys.argv[2]
key = {"instance": "box/1"}   # a '/' makes the client use the @base64 encoding
registry = CollectorRegistry()
if step == "push":
    Gauge("py_alpha", "Alpha.", registry=registry).set(1)
    Gauge("py_beta", "Beta.", registry=registry).set(2)
    Counter("py_runs", "Runs.", registry=registry).inc(3)
    push_to_gateway(gateway, job="pyjob", grouping_key=key, registry=registry)
elif step == "pushadd":
    Gauge("py_beta", "Beta.", registry=registry).set(5)
    Gauge("py_gamma", "Gamma.", registry=registry).set(6)
    pushadd_to_gateway(gateway, job="pyjob", grouping_key=key, registry=registry)
elif step == "replace":
    Gauge("py_gamma", "Gamma.", registry=registry).set(7)
    push_to_gateway(gateway, job="pyjob", grouping_key=key, registry=registry)
elif step == "delete":
    delete_from_gateway(gateway, job="pyjob", grouping_key=key)
"#;

#[test]
fn python_client_push_pushadd_delete() {
    let python = python();
    let serve = Serve::start();
    let dir = support::tempdir("tokentray-pyclient-");
    let script = dir.path().join("client.py");
    std::fs::write(&script, PY_CLIENT).unwrap();
    let gateway = format!("http://{}", serve.metrics);
    let run = |step: &str| {
        let out = Command::new(&python).arg(&script).arg(&gateway).arg(step).output().unwrap();
        assert!(
            out.status.success(),
            "python {step}: {}\nserve:\n{}",
            String::from_utf8_lossy(&out.stderr),
            serve.stderr()
        );
    };
    let group = [("job", "pyjob"), ("instance", "box/1")];
    let read = || {
        let scrape = serve.scrape();
        promtool_check(&scrape);
        let samples = prom::parse(&scrape);
        ["py_alpha", "py_beta", "py_gamma", "py_runs_total"].map(|n| value(&samples, n, &group))
    };

    run("push");
    assert_eq!(read(), [Some(1.0), Some(2.0), None, Some(3.0)], "push_to_gateway");
    run("pushadd");
    assert_eq!(
        read(),
        [Some(1.0), Some(5.0), Some(6.0), Some(3.0)],
        "pushadd_to_gateway keeps the others"
    );
    run("replace");
    assert_eq!(read(), [None, None, Some(7.0), None], "push_to_gateway replaces the group");
    run("delete");
    assert_eq!(read(), [None, None, None, None], "delete_from_gateway");
    assert_eq!(value(&prom::parse(&serve.scrape()), "push_time_seconds", &group), None);
}

#[test]
fn prometheus_with_honor_labels_keeps_the_pushed_job_and_instance() {
    let serve = Serve::start();
    let (code, answer) =
        curl("PUT", &push_url(&serve, "job/exercise/instance/x"), Some(HOOK_BODY.as_bytes()), &[]);
    assert_eq!(code, 200, "{answer}");
    let prometheus = Prometheus::start(serve.metrics);
    let deadline = Instant::now() + Duration::from_secs(60);
    let got = loop {
        let got = prometheus.query("hook_runs_total");
        if !got.is_empty() || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(
        got.len(),
        1,
        "hook_runs_total in Prometheus: {got:?}\n{}\n{}",
        prometheus.targets(),
        prometheus.log()
    );
    let (labels, v) = &got[0];
    assert_eq!(*v, 3.0);
    let want: BTreeMap<&str, &str> =
        [("job", "exercise"), ("instance", "x"), ("kind", "lint")].into();
    for (k, want) in want {
        assert_eq!(labels.get(k).map(String::as_str), Some(want), "{labels:?}");
    }
    let pushed_at = prometheus.query("push_time_seconds{job=\"exercise\",instance=\"x\"}");
    assert_eq!(pushed_at.len(), 1, "{pushed_at:?}");
}

#[test]
fn refusals_change_nothing_and_groups_survive_restarts() {
    let mut serve = Serve::start_with(ServeOptions {
        env: vec![("TOKENTRAY_MAX_BODY_BYTES".into(), "4096".into())],
        ..ServeOptions::default()
    });
    let (code, _) =
        curl("PUT", &push_url(&serve, "job/exercise/instance/x"), Some(HOOK_BODY.as_bytes()), &[]);
    assert_eq!(code, 200);
    let before = pushed_lines(&serve.scrape());
    assert!(!before.is_empty());

    // A malformed body: 400 naming the line, nothing changed (not even its good lines).
    let bad = b"hook_last_seconds 100\nhook_runs_total{kind=lint} 4\n";
    let (code, answer) = curl("PUT", &push_url(&serve, "job/exercise/instance/x"), Some(bad), &[]);
    assert_eq!(code, 400, "{answer}");
    assert!(answer.contains("line 2") && answer.contains("not quoted"), "{answer}");
    assert_eq!(pushed_lines(&serve.scrape()), before, "a refused push changed /metrics");

    // Over the body limit: 413.
    let big = "x 1\n".repeat(2000);
    let (code, answer) =
        curl("POST", &push_url(&serve, "job/exercise/instance/x"), Some(big.as_bytes()), &[]);
    assert_eq!(code, 413, "{answer}");

    // A foreign Host (DNS rebinding) and a web page's Origin: refused like /metrics.
    let url = push_url(&serve, "job/exercise/instance/x");
    let (code, _) = curl("PUT", &url, Some(b"x 1\n"), &["-H", "Host: evil.example"]);
    assert_eq!(code, 403);
    let (code, _) = curl("GET", &serve.metrics_url(), None, &["-H", "Host: evil.example"]);
    assert_eq!(code, 403, "/metrics refuses it too");
    let (code, answer) = curl("PUT", &url, Some(b"x 1\n"), &["-H", "Origin: https://evil.example"]);
    assert_eq!(code, 403, "{answer}");
    // Protobuf delimited is not supported: 415 saying so.
    let (code, answer) = curl(
        "PUT",
        &url,
        Some(b"\x00"),
        &["-H", "Content-Type: application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"],
    );
    assert_eq!(code, 415, "{answer}");
    assert!(answer.contains("text format"), "{answer}");
    assert_eq!(pushed_lines(&serve.scrape()), before, "refusals changed /metrics");

    // Restart: the group is still there, push time included.
    serve.restart();
    assert_eq!(pushed_lines(&serve.scrape()), before, "after a restart");
}

#[test]
fn auth_consistency_and_tokentrays_own_names() {
    let secrets = support::tempdir("tokentray-push-token-");
    let token = secrets.path().join("token");
    std::fs::write(&token, "push-s3cr3t\n").unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let serve = Serve::start_with(ServeOptions {
        config_toml: Some(format!(
            "[metrics]\nrequire_header = \"Authorization=@file:{}\"\n",
            token.display()
        )),
        ..ServeOptions::default()
    });
    support::post_usage(serve.http, tokentray_core::testkit::Usage::TYPICAL);
    let auth = ["-H", "Authorization: Bearer push-s3cr3t"];
    let scrape = || {
        let (code, text) = curl("GET", &serve.metrics_url(), None, &auth);
        assert_eq!(code, 200, "{text}");
        text
    };
    let a = push_url(&serve, "job/a");
    let body = b"# HELP shared_level Level.\n# TYPE shared_level gauge\nshared_level 1\n";

    // `[metrics] require_header` guards pushes as it guards /metrics.
    let (code, answer) = curl("PUT", &a, Some(body), &[]);
    assert_eq!(code, 401, "{answer}");
    assert!(!answer.contains("push-s3cr3t"), "{answer}");
    let (code, answer) = curl("PUT", &a, Some(body), &auth);
    assert_eq!(code, 200, "{answer}");

    // A name tokentray exposes itself is refused: /metrics never has two families of one name.
    let own =
        b"# TYPE claude_code_cost_usage_USD_total counter\nclaude_code_cost_usage_USD_total 5\n";
    let (code, answer) = curl("PUT", &push_url(&serve, "job/b"), Some(own), &auth);
    assert_eq!(code, 400, "{answer}");
    assert!(answer.contains("claude_code_cost_usage_USD_total"), "{answer}");

    // One type per name across groups (Pushgateway's consistency check); the refused group keeps
    // its metrics and records the failure time.
    let b = push_url(&serve, "job/b");
    let (code, _) = curl(
        "PUT",
        &b,
        Some(b"# HELP other_level Other.\n# TYPE other_level gauge\nother_level 2\n"),
        &auth,
    );
    assert_eq!(code, 200);
    let clash = b"# HELP shared_level Level.\n# TYPE shared_level counter\nshared_level 3\n";
    let before = now_s();
    let (code, answer) = curl("PUT", &b, Some(clash), &auth);
    assert_eq!(code, 400, "{answer}");
    assert!(answer.contains("shared_level"), "{answer}");

    let text = scrape();
    promtool_check(&text);
    let samples = prom::parse(&text);
    assert_eq!(value(&samples, "other_level", &[("job", "b")]), Some(2.0), "{text}");
    assert_eq!(value(&samples, "shared_level", &[("job", "a")]), Some(1.0));
    assert_eq!(value(&samples, "shared_level", &[("job", "b")]), None);
    let failed_at = value(&samples, "push_failure_time_seconds", &[("job", "b")]).unwrap();
    assert!(failed_at >= before.floor(), "push_failure_time_seconds {failed_at} < {before}");
    assert_eq!(value(&samples, "push_failure_time_seconds", &[("job", "a")]), Some(0.0));
    assert!(
        prom::sum(&samples, "claude_code_cost_usage_USD_total") > 0.0,
        "tokentray's own series are still there:\n{text}"
    );
    assert_eq!(text.matches("# TYPE claude_code_cost_usage_USD_total ").count(), 1);
}

#[test]
fn pushed_groups_never_go_idle() {
    // 0.0001 h = 0.36 s: every series of tokentray's own would leave /metrics at once.
    let serve = Serve::start_with(ServeOptions {
        config_toml: Some("[metrics]\nseries_idle_hours = 0.0001\n".into()),
        ..ServeOptions::default()
    });
    let (code, _) =
        curl("PUT", &push_url(&serve, "job/exercise/instance/x"), Some(HOOK_BODY.as_bytes()), &[]);
    assert_eq!(code, 200);
    std::thread::sleep(Duration::from_secs(2));
    let samples = prom::parse(&serve.scrape());
    assert_eq!(value(&samples, "hook_runs_total", &[("job", "exercise")]), Some(3.0));
}
