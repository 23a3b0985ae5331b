//! A developer's remote box forwarding to their own laptop: a `serve` on the "remote" forwards
//! over gRPC, with the required token, to a `serve` standing in for the laptop's tray. The laptop
//! is stopped for a while (asleep) and started again: everything the remote received arrives
//! once, and the laptop's dashboard shows today per machine, counted in today's total.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use serde_json::Value;
use support::forward::{forwarding_options, replay, status, team_collector, wait_delivered, TOKEN};
use support::{approx_eq, eventually, post_usage, post_usage_with, Checker, Serve};
use tokentray_core::testkit::Usage;

fn dashboard(serve: &Serve) -> Value {
    reqwest::blocking::get(format!("http://{}/api/dashboard", serve.metrics))
        .and_then(|r| r.json())
        .expect("GET /api/dashboard")
}

/// The remote box: forwarding to `laptop_grpc` as developer ana on machine `devbox`.
fn remote(laptop_grpc: &str) -> (Serve, tempfile::TempDir) {
    let dir = support::tempdir("tokentray-remote-headers-");
    let headers = dir.path().join("headers");
    std::fs::write(&headers, format!("Authorization={}", TOKEN.replace(' ', "%20")))
        .expect("write headers");
    let mut options = forwarding_options(&format!("http://{laptop_grpc}"), "grpc", Some(&headers));
    options.config_toml = options.config_toml.map(|c| {
        c.replace("retry_initial_ms", "developer = \"ana\"\nmachine = \"devbox\"\nretry_initial_ms")
    });
    (Serve::start_with(options), dir)
}

fn figures(report: &Value) -> [(&'static str, f64); 4] {
    [
        ("cost_usd", report["cost_usd"].as_f64().unwrap_or(f64::NAN)),
        ("tokens", report["tokens"]["total"].as_f64().unwrap_or(f64::NAN)),
        ("api_requests", report["api_requests"]["count"].as_f64().unwrap_or(f64::NAN)),
        ("sessions", report["sessions"].as_f64().unwrap_or(f64::NAN)),
    ]
}

#[test]
fn a_remote_box_forwards_to_the_sleeping_laptop_and_everything_arrives_once() {
    // The laptop's tray: its gRPC port is fixed so it comes back where the remote sends.
    let laptop_grpc = format!("127.0.0.1:{}", support::free_port());
    let (mut laptop, _secret) = team_collector(&laptop_grpc, "127.0.0.1:0", &[]);
    // Its own Claude Code sends with the token too (OTEL_EXPORTER_OTLP_HEADERS).
    post_usage_with(laptop.http, Usage::TYPICAL, &[("authorization", TOKEN)]);
    let own = laptop.report(&["all", "--json"]);

    let (remote, _headers) = remote(&laptop_grpc);
    replay(&remote, &["http-protobuf-delta"]);
    post_usage(remote.http, Usage::TYPICAL);
    wait_delivered(&remote);

    // The laptop sleeps; the remote keeps working and queues.
    laptop.stop();
    replay(&remote, &["http-json-cumulative-slow"]);
    post_usage(remote.http, Usage::TYPICAL);
    eventually(Duration::from_secs(30), || {
        let st = status(&remote);
        let mut c = Checker::new();
        c.check(st["state"] == "retrying" && st["queue"]["requests"].as_u64() > Some(0), || {
            format!("not waiting for the laptop: {st}")
        });
        c
    })
    .assert_ok("the remote queues while the laptop is away");

    laptop.start_again();
    wait_delivered(&remote);

    // Everything once: the laptop's history is its own plus exactly the remote's.
    let (theirs, total) = (remote.report(&["all", "--json"]), laptop.report(&["all", "--json"]));
    let mut c = Checker::new();
    for ((name, mine), ((_, remote), (_, laptop))) in
        figures(&own).into_iter().zip(figures(&theirs).into_iter().zip(figures(&total)))
    {
        c.num(format!("laptop's {name}: its own + the remote's"), laptop, mine + remote);
    }

    // Today per machine: the laptop's own post, and the remote's two under its name.
    let d = dashboard(&laptop);
    let machines = d["machines_today"].as_array().cloned().unwrap_or_default();
    let row = |pred: &dyn Fn(&Value) -> bool| machines.iter().find(|m| pred(m)).cloned();
    let here = row(&|m| m["this_machine"] == true);
    let devbox = row(&|m| m["machine"] == "devbox");
    c.check(machines.len() == 2, || format!("machines today: {machines:?}"));
    c.num(
        "this machine's spend today",
        here.as_ref().and_then(|m| m["cost_usd"].as_f64()).unwrap_or(f64::NAN),
        Usage::TYPICAL.cost_usd,
    );
    c.num(
        "devbox's spend today",
        devbox.as_ref().and_then(|m| m["cost_usd"].as_f64()).unwrap_or(f64::NAN),
        2.0 * Usage::TYPICAL.cost_usd,
    );
    c.check(devbox.as_ref().is_some_and(|m| m["developer"] == "ana"), || format!("{devbox:?}"));
    let today = d["today"]["cost_usd"].as_f64().unwrap_or(f64::NAN);
    c.check(approx_eq(today, 3.0 * Usage::TYPICAL.cost_usd), || {
        format!("today's total {today} does not count the remote's spend")
    });
    c.assert_ok(&format!("after the laptop slept\n{}", laptop.stderr()));
}

#[test]
fn forward_setup_takes_the_identity_and_defaults_the_developer_to_the_os_user() {
    let dir = support::tempdir("tokentray-identity-");
    let (data, config) = (dir.path().join("data"), dir.path().join("config.toml"));
    // `forward status` reads the history, and only the engines create a data directory.
    std::fs::create_dir_all(&data).expect("data dir");
    let run = |args: &[&str]| {
        let out = support::serve::command(&data, &config)
            .env("USER", "zoe")
            .args(args)
            .output()
            .expect("run tokentray");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{args:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
        text
    };
    let said = run(&[
        "forward",
        "setup",
        "--endpoint",
        "http://127.0.0.1:4317",
        "--team",
        "payments",
        "--machine",
        "devbox",
    ]);
    assert!(
        said.contains("sent as:      developer=zoe, team=payments, host.name=devbox"),
        "{said}"
    );
    // Only the identity changes: the endpoint and protocol stay.
    run(&["forward", "setup", "--developer", "ana", "--team", ""]);
    let written = tokentray_core::config::Config::from_file(&config).expect("valid config");
    let forward = &written.forward;
    assert_eq!(forward.endpoint.as_deref(), Some("http://127.0.0.1:4317"));
    assert_eq!(forward.developer.as_deref(), Some("ana"));
    assert_eq!(forward.machine.as_deref(), Some("devbox"));
    assert_eq!(forward.team, None);
    let st: Value = serde_json::from_str(&run(&["forward", "status", "--json"])).expect("JSON");
    assert_eq!(st["identity"], serde_json::json!([["developer", "ana"], ["host.name", "devbox"]]));
}
