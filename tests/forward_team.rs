//! Forwarding to the team, against real peers on loopback: a second `tokentray serve` that
//! requires a bearer token (the team collector) over gRPC and over OTLP/HTTP, and a real
//! Prometheus receiving remote write. The recorded Claude Code requests go into a local `serve`;
//! afterwards the team's side must show the same totals as the local `/metrics`.
//!
//! Headers come from `[forward] headers_file` here, so these tests need no keychain; the
//! keychain, and fixing a wrong token through it, are tested in tests/forward_keychain.rs.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use serde_json::Value;
use support::forward::{
    assert_same_series, local_forwarding, replay, samples, status, team_collector, wait_delivered,
    DELIVERY, TOKEN,
};
use support::prom;
use support::prometheus::Prometheus;
use support::{approx_eq, eventually, Checker};

fn forwards_to_a_team_serve(protocol: &str) {
    let (team, _secret) = team_collector("127.0.0.1:0", "127.0.0.1:0", &[]);
    let endpoint = match protocol {
        "grpc" => format!("http://{}", team.grpc),
        _ => format!("http://{}", team.http),
    };
    let (local, _headers) = local_forwarding(
        &endpoint,
        protocol,
        &format!("Authorization={}", TOKEN.replace(' ', "%20")),
    );
    // Delta and cumulative, metrics and events, several exports per session.
    replay(&local, &["grpc-delta", "http-json-cumulative-slow", "http-protobuf-gzip"]);
    let st = wait_delivered(&local);
    assert_eq!(st["state"], "up to date", "{st}");
    assert!(st["last_error"].is_null(), "{st}");

    let local_body = local.scrape();
    let team_body = team.scrape();
    assert_same_series(
        &samples(&local_body),
        &samples(&team_body),
        &format!("{protocol}: team /metrics vs local /metrics"),
    );
    assert!(prom::sum(&prom::parse(&team_body), "claude_code_cost_usage_USD_total") > 0.0);
    // The attributes added on the way out reach the team (as the Collector shows resource
    // attributes: in target_info).
    assert!(
        team_body
            .lines()
            .any(|l| l.starts_with("target_info{") && l.contains("team_id=\"payments\"")),
        "no team_id in the team's target_info:\n{team_body}"
    );
    // Events (logs) too: the team's history reports the same requests, cost and sessions.
    let (mine, theirs) = (local.report(&["all", "--json"]), team.report(&["all", "--json"]));
    assert!(mine["api_requests"]["count"].as_u64() > Some(0), "{mine}");
    assert_eq!(mine, theirs, "report of the team's history differs from the local one");
}

#[test]
fn forwards_everything_to_a_team_serve_over_grpc() {
    forwards_to_a_team_serve("grpc");
}

#[test]
fn forwards_everything_to_a_team_serve_over_http_protobuf() {
    forwards_to_a_team_serve("http/protobuf");
}

#[test]
fn the_team_receiver_refuses_requests_without_the_token() {
    let (team, _secret) = team_collector("127.0.0.1:0", "127.0.0.1:0", &[]);
    let body = prost::Message::encode_to_vec(&tokentray_core::testkit::metrics_request(
        tokentray_core::testkit::usage_metrics(
            "s",
            "u",
            "m",
            tokentray_core::testkit::Usage::TYPICAL,
            1,
            2,
            false,
        ),
    ));
    let client = reqwest::blocking::Client::new();
    let post = |auth: Option<&str>| {
        let mut req = client
            .post(format!("http://{}/v1/metrics", team.http))
            .header("content-type", "application/x-protobuf")
            .body(body.clone());
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send().expect("POST")
    };
    assert_eq!(post(None).status().as_u16(), 401);
    let wrong = post(Some("Bearer nope"));
    assert_eq!(wrong.status().as_u16(), 401);
    assert!(wrong.text().unwrap_or_default().contains("wrong authorization header"));
    assert_eq!(post(Some(TOKEN)).status().as_u16(), 200);
    // A literal value on the command line is refused before anything starts.
    let out = support::serve::command(&team.data_dir, &team.config)
        .args([
            "serve",
            "--require-header",
            "Authorization=Bearer visible",
            "--otlp-grpc",
            "127.0.0.1:0",
            "--otlp-http",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
        ])
        .output()
        .expect("run serve");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/proc/<pid>/cmdline") && !err.contains("visible"), "{err}");
}

#[test]
fn outage_and_restart_lose_nothing() {
    // The collector's address is fixed, but nobody listens there yet.
    let grpc = format!("127.0.0.1:{}", support::free_port());
    let (mut local, _headers) = local_forwarding(
        &format!("http://{grpc}"),
        "grpc",
        &format!("Authorization={}", TOKEN.replace(' ', "%20")),
    );
    replay(&local, &["grpc-delta"]);
    let mut down = Value::Null;
    eventually(Duration::from_secs(20), || {
        down = status(&local);
        let mut c = Checker::new();
        c.check(
            down["state"] == "retrying" && down["queue"]["requests"].as_u64() > Some(0),
            || format!("not retrying: {down}"),
        );
        c
    })
    .assert_ok("the local side says it is retrying");
    assert!(
        down["last_error"].as_str().is_some_and(|e| e.contains("UNAVAILABLE") && e.contains(&grpc)),
        "{down}"
    );

    // `doctor` says so too, with what to do.
    let doctor = support::serve::command(&local.data_dir, &local.config)
        .arg("doctor")
        .output()
        .expect("doctor");
    let said = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        said.contains("Retrying: UNAVAILABLE") && said.contains("nothing is lost meanwhile"),
        "{said}"
    );

    // tokentray restarts during the outage; more data arrives after it.
    local.restart();
    replay(&local, &["http-protobuf-delta"]);
    let queued = status(&local)["queue"]["requests"].as_u64().unwrap_or(0);
    assert!(queued >= 2, "queue after restart: {queued}");

    // The collector comes up.
    let (team, _secret) = team_collector(&grpc, "127.0.0.1:0", &[]);
    wait_delivered(&local);
    assert_same_series(&samples(&local.scrape()), &samples(&team.scrape()), "after the outage");
}

#[test]
fn requests_the_peer_refuses_as_invalid_are_dropped_and_counted() {
    // A team receiver with a 200-byte body limit refuses every request with 413, for good.
    let (team, _secret) =
        team_collector("127.0.0.1:0", "127.0.0.1:0", &[("TOKENTRAY_MAX_BODY_BYTES", "200")]);
    let (local, _headers) = local_forwarding(
        &format!("http://{}", team.http),
        "http/protobuf",
        &format!("Authorization={}", TOKEN.replace(' ', "%20")),
    );
    replay(&local, &["http-protobuf-delta"]);
    let mut st = Value::Null;
    eventually(DELIVERY, || {
        st = status(&local);
        let mut c = Checker::new();
        c.check(st["queue"]["requests"] == 0 && st["dropped_rejected"].as_u64() > Some(0), || {
            format!("{st}")
        });
        c
    })
    .assert_ok("refused requests are dropped");
    let err = st["last_error"].as_str().unwrap_or_default();
    assert!(
        err.starts_with("413 Payload Too Large from 127.0.0.1:") && err.contains("dropped"),
        "{err}"
    );
    assert!(!err.contains("team-s3cr3t"));
    // Local totals are untouched by what the team refused.
    assert!(prom::sum(&prom::parse(&local.scrape()), "claude_code_cost_usage_USD_total") > 0.0);
}

#[test]
fn remote_write_to_prometheus_gives_the_same_totals() {
    let prometheus = Prometheus::start_receiver();
    let (local, _headers) =
        local_forwarding(&prometheus.remote_write_url(), "prometheus-remote-write", "");
    replay(&local, &["grpc-delta", "http-json-cumulative-slow"]);
    wait_delivered(&local);
    // More data later: the changed totals follow.
    replay(&local, &["http-protobuf-delta"]);
    wait_delivered(&local);

    let local_samples: Vec<prom::Sample> = prom::parse(&local.scrape())
        .into_iter()
        .filter(|s| s.name.starts_with("claude_code_"))
        .collect();
    assert!(!local_samples.is_empty());
    let mut c = Checker::new();
    for s in &local_samples {
        let mut selector: Vec<String> = s
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        selector.push("team_id=\"payments\"".into());
        let expr = format!("{}{{{}}}", s.name, selector.join(","));
        match prometheus.query(&expr).as_slice() {
            [(_, v)] => c.check(approx_eq(*v, s.value), || {
                format!("{expr}: Prometheus {v}, local {}", s.value)
            }),
            other => c.fail(format!("{expr}: {} results in Prometheus", other.len())),
        }
    }
    // And the totals a dashboard would show.
    let local_cost = prom::sum(&local_samples, "claude_code_cost_usage_USD_total");
    let promql_cost =
        prometheus.query_one("sum(claude_code_cost_usage_USD_total)").unwrap_or(f64::NAN);
    c.num("sum(claude_code_cost_usage_USD_total)", promql_cost, local_cost);
    c.assert_ok(&format!("PromQL vs local /metrics\n{}", prometheus.log()));
}

#[test]
fn remote_write_resends_recent_totals_like_a_scrape() {
    // Without new data, recent series are sent again every `resend_interval_seconds`, so the
    // team's instant queries (5-minute lookback) keep finding them between changes.
    let prometheus = Prometheus::start_receiver();
    let mut options = support::forward::forwarding_options(
        &prometheus.remote_write_url(),
        "prometheus-remote-write",
        None,
    );
    options.config_toml = options
        .config_toml
        .map(|c| c.replace("retry_initial_ms", "resend_interval_seconds = 1\nretry_initial_ms"));
    let local = support::Serve::start_with(options);
    // Fresh points (the fixtures' own times are from their recording day, outside the window).
    support::post_usage(local.http, tokentray_core::testkit::Usage::TYPICAL);
    wait_delivered(&local);
    let samples = |p: &Prometheus| {
        p.query_one("sum(count_over_time(claude_code_cost_usage_USD_total[1h]))").unwrap_or(0.0)
    };
    let first = samples(&prometheus);
    let mut later = first;
    eventually(Duration::from_secs(20), || {
        later = samples(&prometheus);
        let mut c = Checker::new();
        c.check(later >= first + 3.0, || format!("samples in Prometheus: {first} then {later}"));
        c
    })
    .assert_ok("recent totals are re-sent without new data");
    let st = status(&local);
    assert!(st["last_error"].is_null(), "{st}");
    let cost = prometheus.query_one("sum(claude_code_cost_usage_USD_total)").unwrap_or(f64::NAN);
    assert!(approx_eq(cost, tokentray_core::testkit::Usage::TYPICAL.cost_usd), "{cost}");
}

#[test]
fn a_full_queue_drops_the_oldest_and_says_so() {
    // The collector is down and the queue may hold nothing (0 MiB): what arrives is dropped from
    // the queue (never from the local history) and the status says why.
    let endpoint = format!("http://127.0.0.1:{}", support::free_port());
    let mut options = support::forward::forwarding_options(&endpoint, "grpc", None);
    options.config_toml = options
        .config_toml
        .map(|c| c.replace("retry_initial_ms", "max_queue_mib = 0\nretry_initial_ms"));
    let local = support::Serve::start_with(options);
    replay(&local, &["http-protobuf-delta"]);
    let mut st = Value::Null;
    eventually(Duration::from_secs(30), || {
        st = status(&local);
        let mut c = Checker::new();
        c.check(st["dropped_overflow"].as_u64() > Some(0) && st["queue"]["requests"] == 0, || {
            format!("{st}")
        });
        c
    })
    .assert_ok("the queue is trimmed to its limit");
    // Said in `last_drop`: a delivery attempt to the down collector may replace `last_error`.
    let drop = st["last_drop"].as_str().unwrap_or_default();
    assert!(drop.starts_with("queue full: dropped the") && drop.contains("max_queue_mib"), "{st}");
    assert!(
        prom::sum(&prom::parse(&local.scrape()), "claude_code_cost_usage_USD_total") > 0.0,
        "local history keeps everything"
    );
}

#[test]
fn remote_write_over_tls_trusts_the_configured_ca() {
    let ca = support::tls::TestCa::new();
    let prometheus = Prometheus::start_receiver_tls(&ca);
    let url = prometheus.remote_write_url();
    assert!(url.starts_with("https://"));
    let (local, _headers) = local_forwarding(&url, "prometheus-remote-write", "");
    replay(&local, &["grpc-delta"]);
    // The system roots do not know the test CA: the certificate is refused, and retried.
    let mut st = Value::Null;
    eventually(Duration::from_secs(20), || {
        st = status(&local);
        let mut c = Checker::new();
        c.check(st["state"] == "retrying", || format!("{st}"));
        c
    })
    .assert_ok("an unknown CA is refused");
    assert!(st["last_error"].as_str().is_some_and(|e| e.contains("certificate")), "{st}");
    // With the CA file configured (setup rewrites [forward]; the running forwarder follows).
    local.cli(&[
        "forward",
        "setup",
        "--endpoint",
        &url,
        "--protocol",
        "prometheus-remote-write",
        "--ca-file",
        &ca.ca_pem.display().to_string(),
    ]);
    wait_delivered(&local);
    let local_cost = prom::sum(&prom::parse(&local.scrape()), "claude_code_cost_usage_USD_total");
    let promql = prometheus.query_one("sum(claude_code_cost_usage_USD_total)").unwrap_or(f64::NAN);
    assert!(
        local_cost > 0.0 && approx_eq(promql, local_cost),
        "PromQL {promql} vs local {local_cost}\n{}",
        prometheus.log()
    );
}

#[test]
fn forward_on_from_another_process_forwards_the_very_next_request() {
    // The running serve has forwarding set up but off; `tokentray forward on` runs in another
    // process and the data follows at once: nothing may slip through before the running engine
    // notices the switch.
    let (team, _secret) = team_collector("127.0.0.1:0", "127.0.0.1:0", &[]);
    let dir = support::tempdir("tokentray-local-headers-");
    let headers = dir.path().join("headers");
    std::fs::write(&headers, format!("Authorization={}", TOKEN.replace(' ', "%20")))
        .expect("write headers");
    let mut options = support::forward::forwarding_options(
        &format!("http://{}", team.grpc),
        "grpc",
        Some(&headers),
    );
    options.before_start.clear();
    let local = support::Serve::start_with(options);
    replay(&local, &["http-protobuf-delta"]);
    assert_eq!(status(&local)["queue"]["requests"], 0, "off: nothing is queued");
    local.cli(&["forward", "on"]);
    replay(&local, &["grpc-delta"]);
    wait_delivered(&local);
    // The team has exactly the second set: compare with a serve that received only it.
    let reference = support::Serve::start();
    replay(&reference, &["grpc-delta"]);
    assert_same_series(
        &samples(&reference.scrape()),
        &samples(&team.scrape()),
        "the team got everything after `forward on`, and only that",
    );
}
