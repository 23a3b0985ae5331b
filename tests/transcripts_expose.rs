//! `[transcripts] expose = true` (issue 15): what only the transcripts saw reaches `/metrics`
//! and the team, each request once with telemetry. A session of four requests whose first two
//! telemetry counted (events with their `request_id`, cost and token metrics): `/metrics` and
//! the team's `serve` show all four once, `report` still counts four, a restart re-sends
//! nothing, and with `expose` off `/metrics` keeps telemetry's two.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use prost::Message;
use support::prom;
use support::serve::ServeOptions;
use support::{eventually, Checker, Serve};
use tokentray_core::testkit::{self, Usage};

const SESSION: &str = "s-half";
const MODEL: &str = "claude-sonnet-4-5";
/// `[pricing]` for Sonnet 4.5 at $100 / $1000 per million: 1000 in + 2000 out = $2.10.
const SONNET_AT_2_10: &str = "[pricing.models.claude-sonnet-4-5]\ninput = 100\noutput = 1000\ncache_read = 0\ncache_write_5m = 0\ncache_write_1h = 0\n";
const REQUEST: Usage =
    Usage { cost_usd: 2.1, input: 1000.0, output: 2000.0, cache_read: 0.0, cache_creation: 0.0 };
const WAIT: Duration = Duration::from_secs(60);

/// The config: `expose` as given, requests settle after a second, the [`SONNET_AT_2_10`] prices.
fn transcripts_config(expose: bool) -> String {
    format!("[transcripts]\nexpose = {expose}\nsettle_seconds = 1\n\n{SONNET_AT_2_10}")
}

/// A HOME whose `~/.claude` holds the session's four requests, one a minute, ten minutes ago.
fn home_with_session() -> (tempfile::TempDir, Vec<(String, u64)>) {
    let home = support::tempdir("tokentray-expose-home-");
    let folder = home.path().join(".claude/projects/-tmp-exposed");
    std::fs::create_dir_all(&folder).unwrap();
    let start = chrono::Utc::now() - chrono::Duration::minutes(10);
    let mut lines = String::new();
    let mut requests = Vec::new();
    for i in 0..4 {
        let at = start + chrono::Duration::minutes(i);
        let id = format!("req_expose_{i}");
        let time = at.format("%Y-%m-%dT%H:%M:%S%.3fZ");
        lines.push_str(&format!(
            "{{\"type\":\"assistant\",\"sessionId\":\"{SESSION}\",\"requestId\":\"{id}\",\"timestamp\":\"{time}\",\"cwd\":\"/tmp/exposed\",\"gitBranch\":\"main\",\"message\":{{\"id\":\"msg_{id}\",\"model\":\"{MODEL}\",\"content\":[{{\"type\":\"text\",\"text\":\"hi\"}}],\"usage\":{{\"input_tokens\":1000,\"output_tokens\":2000,\"cache_read_input_tokens\":0,\"cache_creation_input_tokens\":0}}}}}}\n"
        ));
        requests.push((id, at.timestamp_nanos_opt().unwrap() as u64));
    }
    std::fs::write(folder.join(format!("{SESSION}.jsonl")), lines).unwrap();
    (home, requests)
}

fn with_home(mut options: ServeOptions, home: &Path) -> ServeOptions {
    options.env.extend([
        ("HOME".into(), home.display().to_string()),
        ("CLAUDE_CONFIG_DIR".into(), home.join(".claude").display().to_string()),
    ]);
    options
}

fn post(serve: &Serve, path: &str, body: Vec<u8>) {
    let resp = reqwest::blocking::Client::new()
        .post(format!("http://{}/{path}", serve.http))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .expect("POST");
    assert!(resp.status().is_success(), "POST /{path}: {}", resp.status());
}

/// Telemetry of the session's first two requests: their `api_request` events (with
/// `request_id`) and the cost and token metrics they add up to, as Claude Code sends them.
fn post_telemetry_of_the_first_two(serve: &Serve, requests: &[(String, u64)]) {
    let records = requests[..2]
        .iter()
        .map(|(id, at)| {
            let mut r = testkit::api_request_record(SESSION, "u", MODEL, REQUEST, *at);
            r.attributes.push(testkit::kv("request_id", id));
            r
        })
        .collect();
    post(serve, "v1/logs", testkit::logs_request(records).encode_to_vec());
    let two = Usage { cost_usd: 4.2, input: 2000.0, output: 4000.0, ..REQUEST };
    let (first, second) = (requests[0].1, requests[1].1);
    let metrics = testkit::usage_metrics(SESSION, "u", MODEL, two, first, second, false);
    post(serve, "v1/metrics", testkit::metrics_request(metrics).encode_to_vec());
}

/// Sums of `/metrics` per family, and of the transcripts' own series (`otel_scope_name`).
#[derive(Debug, Default)]
struct Sums {
    cost: f64,
    cost_from_transcripts: f64,
    tokens: BTreeMap<String, f64>,
}

fn sums(body: &str) -> Sums {
    let mut s = Sums::default();
    for sample in prom::parse(body) {
        let own = sample.labels.get("otel_scope_name").map(String::as_str)
            == Some("tokentray.transcripts");
        match sample.name.as_str() {
            "claude_code_cost_usage_USD_total" => {
                s.cost += sample.value;
                if own {
                    s.cost_from_transcripts += sample.value;
                }
            }
            "claude_code_token_usage_tokens_total" => {
                let kind = sample.labels.get("type").cloned().unwrap_or_default();
                *s.tokens.entry(kind).or_insert(0.0) += sample.value;
            }
            _ => {}
        }
    }
    s
}

/// `/metrics` of `serve` shows the four requests once: $8.40 (half of it the transcripts'),
/// 4000 input and 8000 output tokens.
fn check_all_four(serve: &Serve, want_from_transcripts: f64) -> Checker {
    let s = sums(&serve.scrape());
    let mut c = Checker::new();
    c.num("cost", s.cost, 8.4);
    c.num("cost from the transcripts", s.cost_from_transcripts, want_from_transcripts);
    c.num("input tokens", s.tokens.get("input").copied().unwrap_or(0.0), 4000.0);
    c.num("output tokens", s.tokens.get("output").copied().unwrap_or(0.0), 8000.0);
    c
}

fn assert_report_counts_four(serve: &Serve) {
    let r = serve.report(&["all", "--json"]);
    let cost = r["cost_usd"].as_f64().expect("cost");
    assert!((cost - 8.4).abs() < 1e-9, "report counts each request once: {r:#}");
    assert_eq!(r["api_requests"]["count"], 4, "{r:#}");
}

#[test]
fn exposed_transcripts_complete_telemetry_on_metrics_once_and_survive_a_restart() {
    let (home, requests) = home_with_session();
    // Telemetry first, as Claude Code sends it while it writes the transcript; the transcript
    // is then read by the engine's own import at start.
    let options =
        ServeOptions { config_toml: Some(transcripts_config(true)), ..Default::default() };
    let hidden = home.path().join(".claude-later");
    std::fs::rename(home.path().join(".claude"), &hidden).unwrap();
    let mut serve = Serve::start_with(with_home(options, home.path()));
    post_telemetry_of_the_first_two(&serve, &requests);
    std::fs::rename(&hidden, home.path().join(".claude")).unwrap();
    serve.restart();

    eventually(WAIT, || check_all_four(&serve, 4.2))
        .assert_ok(&format!("/metrics after the import\n{}", serve.stderr()));
    assert_report_counts_four(&serve);
    support::prometheus::promtool_check(&serve.scrape());
    let body = serve.scrape();
    let own: Vec<_> = prom::parse(&body)
        .into_iter()
        .filter(|s| {
            s.labels.get("otel_scope_name").map(String::as_str) == Some("tokentray.transcripts")
        })
        .collect();
    assert!(
        own.iter().all(|s| s.labels.get("session_id").map(String::as_str) == Some(SESSION)
            && s.labels.get("model").map(String::as_str) == Some(MODEL)
            && s.labels.get("job").map(String::as_str) == Some("claude-code")),
        "the transcripts' series carry the session, the model and Claude Code's job: {own:?}"
    );

    // A restart re-reads nothing and raises nothing: the same totals.
    serve.restart();
    std::thread::sleep(Duration::from_secs(4));
    check_all_four(&serve, 4.2).assert_ok("after a restart");
    assert_report_counts_four(&serve);

    // A fifth request Claude Code writes while the engine runs, telemetry off: followed, then
    // exposed once it has settled (a round of the recent sessions, not of the whole history).
    let line = std::fs::read_to_string(
        home.path().join(format!(".claude/projects/-tmp-exposed/{SESSION}.jsonl")),
    )
    .unwrap()
    .lines()
    .next()
    .unwrap()
    .replace("req_expose_0", "req_expose_live");
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let first_time =
        line.split("\"timestamp\":\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let line = line.replace(&first_time, &now);
    let file = home.path().join(format!(".claude/projects/-tmp-exposed/{SESSION}.jsonl"));
    let mut f = std::fs::OpenOptions::new().append(true).open(&file).unwrap();
    std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()).unwrap();
    eventually(WAIT, || {
        let s = sums(&serve.scrape());
        let mut c = Checker::new();
        c.num("cost", s.cost, 10.5);
        c.num("cost from the transcripts", s.cost_from_transcripts, 6.3);
        c.num("output tokens", s.tokens.get("output").copied().unwrap_or(0.0), 10000.0);
        c
    })
    .assert_ok(&format!("/metrics after a live request\n{}", serve.stderr()));
    let r = serve.report(&["all", "--json"]);
    assert!((r["cost_usd"].as_f64().unwrap() - 10.5).abs() < 1e-9, "{r:#}");
}

#[test]
fn without_expose_metrics_keep_what_telemetry_sent() {
    let (home, requests) = home_with_session();
    let options =
        ServeOptions { config_toml: Some(transcripts_config(false)), ..Default::default() };
    let serve = Serve::start_with(with_home(options, home.path()));
    post_telemetry_of_the_first_two(&serve, &requests);
    // The report has all four once the import is done; `/metrics` stays at telemetry's two.
    eventually(WAIT, || {
        let mut c = Checker::new();
        let r = serve.report(&["all", "--json"]);
        c.check(r["api_requests"]["count"] == 4, || format!("report: {r}"));
        c
    })
    .assert_ok("import");
    std::thread::sleep(Duration::from_secs(3));
    let s = sums(&serve.scrape());
    assert!((s.cost - 4.2).abs() < 1e-9 && s.cost_from_transcripts == 0.0, "{s:?}");
}

#[test]
fn the_team_gets_the_transcripts_share_once() {
    let (team, _secret) = support::forward::team_collector("127.0.0.1:0", "127.0.0.1:0", &[]);
    let (home, requests) = home_with_session();
    let hidden = home.path().join(".claude-later");
    std::fs::rename(home.path().join(".claude"), &hidden).unwrap();
    let mut options = support::forward::forwarding_options(
        &format!("http://{}", team.http),
        "http/protobuf",
        None,
    );
    let headers = support::tempdir("tokentray-expose-headers-");
    let headers_file = headers.path().join("headers");
    let token = support::forward::TOKEN.replace(' ', "%20");
    std::fs::write(&headers_file, format!("Authorization={token}")).unwrap();
    let forward = options.config_toml.take().unwrap().replace(
        "protocol = \"http/protobuf\"\n",
        &format!("protocol = \"http/protobuf\"\nheaders_file = \"{}\"\n", headers_file.display()),
    );
    options.config_toml = Some(format!("{forward}\n{}", transcripts_config(true)));
    let mut local = Serve::start_with(with_home(options, home.path()));
    post_telemetry_of_the_first_two(&local, &requests);
    std::fs::rename(&hidden, home.path().join(".claude")).unwrap();
    local.restart();

    eventually(WAIT, || check_all_four(&local, 4.2)).assert_ok("local /metrics");
    eventually(support::forward::DELIVERY, || check_all_four(&team, 4.2))
        .assert_ok(&format!("the team's /metrics\n{}", local.stderr()));
    // The team's serve counts what it received, each request once.
    let r = team.report(&["all", "--json"]);
    let cost = r["cost_usd"].as_f64().expect("cost");
    assert!((cost - 8.4).abs() < 1e-9, "the team's report: {r:#}");
}

#[test]
fn remote_write_gives_prometheus_the_whole_session_once() {
    let prometheus = support::prometheus::Prometheus::start_receiver();
    let (home, requests) = home_with_session();
    let hidden = home.path().join(".claude-later");
    std::fs::rename(home.path().join(".claude"), &hidden).unwrap();
    let mut options = support::forward::forwarding_options(
        &prometheus.remote_write_url(),
        "prometheus-remote-write",
        None,
    );
    options.config_toml = options.config_toml.map(|c| format!("{c}\n{}", transcripts_config(true)));
    let mut local = Serve::start_with(with_home(options, home.path()));
    post_telemetry_of_the_first_two(&local, &requests);
    std::fs::rename(&hidden, home.path().join(".claude")).unwrap();
    local.restart();

    eventually(WAIT, || check_all_four(&local, 4.2)).assert_ok("local /metrics");
    // The samples are dated at each series' newest request (minutes ago): a range query.
    let total = |expr: &str| prometheus.query_one(expr).unwrap_or(f64::NAN);
    eventually(support::forward::DELIVERY, || {
        let mut c = Checker::new();
        c.num("cost", total("sum(max_over_time(claude_code_cost_usage_USD_total[1h]))"), 8.4);
        c.num(
            "cost from the transcripts",
            total("sum(max_over_time(claude_code_cost_usage_USD_total{otel_scope_name=\"tokentray.transcripts\"}[1h]))"),
            4.2,
        );
        c.num(
            "input tokens",
            total("sum(max_over_time(claude_code_token_usage_tokens_total{type=\"input\"}[1h]))"),
            4000.0,
        );
        c
    })
    .assert_ok(&format!("Prometheus\n{}\n{}", prometheus.log(), local.stderr()));
}
