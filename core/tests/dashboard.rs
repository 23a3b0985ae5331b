//! `dashboard::build` over a real store: spend of today / this week / this month cut on the local
//! calendar, the token split and cache ratio, models, today's sessions, the 30-day and hourly
//! charts and the last request line; and an empty store showing the setup instructions for the
//! ports actually bound.
//!
//! `now` is fixed (Wednesday 2026-11-18 12:00 local), so every boundary is known: the week
//! started on Monday the 16th, the month on the 1st, and the 30-day chart starts on 2026-10-20.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{DateTime, Local, TimeZone};
use tokentray_core::config::{BudgetsConfig, Config};
use tokentray_core::dashboard::{self, Dashboard, Endpoints};
use tokentray_core::ingest::{self, Privacy};
use tokentray_core::server::BoundAddrs;
use tokentray_core::store::{Reader, Store};
use tokentray_core::testkit::{self, Usage};

const OPUS: &str = "claude-opus-5-5";
const SONNET: &str = "claude-sonnet-5";
const HAIKU: &str = "claude-haiku-5";

fn local(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Local> {
    Local.with_ymd_and_hms(y, mo, d, h, mi, 0).earliest().expect("valid local time")
}

fn ns(t: DateTime<Local>) -> u64 {
    t.timestamp_nanos_opt().expect("in range") as u64
}

fn usage(cost_usd: f64, input: f64, output: f64, cache_read: f64, cache_creation: f64) -> Usage {
    Usage { cost_usd, input, output, cache_read, cache_creation }
}

fn endpoints() -> Endpoints {
    Endpoints::from_bound(&BoundAddrs {
        otlp_grpc: "127.0.0.1:43171".parse().expect("addr"),
        otlp_http: "127.0.0.1:43172".parse().expect("addr"),
        metrics: "127.0.0.1:43173".parse().expect("addr"),
    })
}

/// One export of a session: cost + tokens (delta, one minute long, ending at `at`), the
/// `session.count` point on its first export, and the matching `api_request` event at `at`.
async fn export(
    store: &Store,
    session: &str,
    model: &str,
    u: Usage,
    at: DateTime<Local>,
    first: bool,
) {
    let end = ns(at);
    let start = end - 60_000_000_000;
    let mut metrics = testkit::usage_metrics(session, "user", model, u, start, end, false);
    if first {
        metrics.push(testkit::session_start_metric(session, "user", start, end));
    }
    let ack = store
        .ingest(ingest::metrics::normalize(testkit::metrics_request(metrics), 0))
        .await
        .expect("metrics stored");
    assert_eq!(ack.rejected, 0, "{:?}", ack.reason);
    let logs = testkit::api_request_log(session, "user", model, u, end);
    let ack = store
        .ingest(ingest::logs::normalize(logs, 0, Privacy::default()))
        .await
        .expect("logs stored");
    assert_eq!(ack.rejected, 0, "{:?}", ack.reason);
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[tokio::test]
async fn dashboard_follows_the_local_calendar() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open store");
    let now = local(2026, 11, 18, 12, 0);

    // Today: session A (opus) twice in the 09:00 hour, session B (sonnet) just after midnight.
    export(
        &store,
        "session-a",
        OPUS,
        usage(1.25, 100.0, 10.0, 1000.0, 50.0),
        local(2026, 11, 18, 9, 5),
        true,
    )
    .await;
    export(
        &store,
        "session-a",
        OPUS,
        usage(0.5, 200.0, 20.0, 2000.0, 0.0),
        local(2026, 11, 18, 9, 40),
        false,
    )
    .await;
    export(
        &store,
        "session-b",
        SONNET,
        usage(0.25, 300.0, 30.0, 0.0, 150.0),
        local(2026, 11, 18, 0, 6),
        true,
    )
    .await;
    // Yesterday (this week), Sunday just before midnight (this month, last week), ten days ago,
    // last month on the first day of the 30-day chart, and the day before that (outside it).
    export(
        &store,
        "session-c",
        OPUS,
        usage(2.0, 1.0, 1.0, 1.0, 1.0),
        local(2026, 11, 17, 14, 0),
        true,
    )
    .await;
    export(
        &store,
        "session-d",
        SONNET,
        usage(4.0, 1.0, 1.0, 1.0, 1.0),
        local(2026, 11, 15, 23, 50),
        true,
    )
    .await;
    export(
        &store,
        "session-e",
        HAIKU,
        usage(8.0, 1.0, 1.0, 1.0, 1.0),
        local(2026, 11, 8, 10, 0),
        true,
    )
    .await;
    export(
        &store,
        "session-f",
        OPUS,
        usage(16.0, 1.0, 1.0, 1.0, 1.0),
        local(2026, 10, 20, 10, 0),
        true,
    )
    .await;
    export(
        &store,
        "session-g",
        OPUS,
        usage(32.0, 1.0, 1.0, 1.0, 1.0),
        local(2026, 10, 19, 10, 0),
        true,
    )
    .await;

    let reader = Reader::open(dir.path()).expect("reader");
    let d: Dashboard =
        dashboard::build(&reader, now, &endpoints(), &BudgetsConfig::default()).expect("build");

    assert!(d.has_data);
    assert_eq!(d.generated_at, now.to_rfc3339());

    // Spend on the local calendar.
    assert!(close(d.today.cost_usd, 2.0), "today {}", d.today.cost_usd);
    assert!(close(d.week.cost_usd, 4.0), "week {}", d.week.cost_usd);
    assert!(close(d.month.cost_usd, 16.0), "month {}", d.month.cost_usd);
    assert_eq!(d.today.api_requests, 3);
    assert_eq!(d.week.api_requests, 4);
    assert_eq!(d.today.sessions, 2.0);
    assert_eq!(d.month.sessions, 5.0);
    // The same figures `tokentray report today` prints.
    let report = reader
        .report(
            "today",
            tokentray_core::query::Period::Today.range_at(&now, chrono::Weekday::Mon),
            None,
        )
        .expect("report");
    assert_eq!(d.today.cost_usd, report.figures.cost_usd);

    // Tokens today and the cache hit ratio.
    let t = &d.today.tokens;
    assert_eq!(
        (t.input, t.output, t.cache_read, t.cache_creation, t.total),
        (600.0, 60.0, 3000.0, 200.0, 3860.0)
    );
    let ratio = d.cache_hit_ratio.expect("prompt tokens today");
    assert!(close(ratio, 3000.0 / 3800.0), "ratio {ratio}");

    // Models this month, most expensive first; last month's opus spend is not in it.
    let models: Vec<(&str, f64)> =
        d.models.iter().map(|m| (m.model.as_str(), m.cost_usd)).collect();
    assert_eq!(models.len(), 3, "{models:?}");
    assert_eq!(models[0].0, HAIKU);
    assert_eq!(models[1].0, SONNET);
    assert_eq!(models[2].0, OPUS);
    assert!(
        close(models[0].1, 8.0) && close(models[1].1, 4.25) && close(models[2].1, 3.75),
        "{models:?}"
    );
    assert_eq!(d.models[2].tokens.input, 100.0 + 200.0 + 1.0);

    // Today's sessions, newest first, with cost and first-to-last duration.
    let sessions: Vec<&str> = d.sessions_today.iter().map(|s| s.session_id.as_str()).collect();
    assert_eq!(sessions, ["session-a", "session-b"]);
    let a = &d.sessions_today[0];
    assert!(close(a.cost_usd, 1.75), "{a:?}");
    assert_eq!(a.api_requests, 2);
    // The first export's points span 09:04–09:05 and its series are first seen at 09:05; the
    // events are at 09:05 and 09:40.
    assert_eq!(a.started_at.as_deref(), Some(local(2026, 11, 18, 9, 5).to_rfc3339().as_str()));
    assert_eq!(a.duration_seconds, 35.0 * 60.0);
    let b = &d.sessions_today[1];
    assert!(close(b.cost_usd, 0.25), "{b:?}");
    assert_eq!(b.tokens.cache_creation, 150.0);
    assert_eq!(b.started_at.as_deref(), Some(local(2026, 11, 18, 0, 6).to_rfc3339().as_str()));

    // 30 days, oldest first, zero days included.
    assert_eq!(d.daily.len(), 30);
    assert_eq!(d.daily[0].date, "2026-10-20");
    assert_eq!(d.daily[29].date, "2026-11-18");
    let nonzero: Vec<(&str, f64)> = d
        .daily
        .iter()
        .filter(|x| x.cost_usd != 0.0)
        .map(|x| (x.date.as_str(), x.cost_usd))
        .collect();
    assert_eq!(
        nonzero,
        [
            ("2026-10-20", 16.0),
            ("2026-11-08", 8.0),
            ("2026-11-15", 4.0),
            ("2026-11-17", 2.0),
            ("2026-11-18", 2.0)
        ]
    );

    // Today by hour.
    assert_eq!(d.hourly.len(), 24);
    assert_eq!(d.hourly[9].hour, "09:00");
    assert!(close(d.hourly[9].cost_usd, 1.75), "{:?}", d.hourly[9]);
    assert!(close(d.hourly[0].cost_usd, 0.25), "{:?}", d.hourly[0]);
    assert_eq!(d.hourly.iter().filter(|h| h.cost_usd != 0.0).count(), 2);

    // The newest api_request event.
    let lr = d.last_request.as_ref().expect("last request");
    let f = &lr.figures;
    assert_eq!(f.model.as_deref(), Some(OPUS));
    assert_eq!(f.session_id.as_deref(), Some("session-a"));
    assert_eq!(lr.time, local(2026, 11, 18, 9, 40).to_rfc3339());
    assert_eq!(lr.seconds_ago, (2 * 60 + 20) * 60);
    assert_eq!(
        (f.input_tokens, f.output_tokens, f.cache_read_tokens, f.cache_creation_tokens),
        (Some(200), Some(20), Some(2000), Some(0))
    );
    assert_eq!(f.cost_usd, Some(0.5));
    assert_eq!(f.duration_ms, Some(1200));
    // Flattened: the window reads the same field names as before.
    let lr_json = serde_json::to_value(lr).expect("json");
    assert_eq!(lr_json["model"], OPUS);
    assert_eq!(lr_json["input_tokens"], 200);

    // The JSON contract the window reads.
    let json = serde_json::to_value(&d).expect("json");
    for key in [
        "generated_at",
        "has_data",
        "today",
        "week",
        "month",
        "cache_hit_ratio",
        "models",
        "sessions_today",
        "daily",
        "hourly",
        "last_request",
        "endpoints",
        "setup_env",
    ] {
        assert!(json.get(key).is_some(), "missing {key} in {json}");
    }
    for key in ["input", "output", "cacheRead", "cacheCreation", "total"] {
        assert!(json["today"]["tokens"].get(key).is_some(), "missing tokens.{key}");
    }
    for key in ["cost_usd", "tokens", "sessions", "active_time_seconds", "api_requests"] {
        assert!(json["week"].get(key).is_some(), "missing week.{key}");
    }
    assert_eq!(json["daily"][29], serde_json::json!({"date": "2026-11-18", "cost_usd": 2.0}));
    assert_eq!(json["hourly"][9]["hour"], "09:00");
    assert_eq!(json["models"][0]["model"], HAIKU);
    // Telemetry only: every row's money is Claude Code's own.
    assert_eq!(json["models"][0]["cost_source"], "exact");
    assert_eq!(json["models"][0]["unpriced_tokens"], 0.0);
    assert_eq!(json["sessions_today"][0]["cost_source"], "exact");
    assert_eq!(json["sessions_today"][0]["from_transcripts"], 0);
    assert_eq!(json["sessions_today"][0]["priced_usd"], 0.0);
    assert_eq!(json["last_request"]["input_tokens"], 200);
    store.close();
}

#[tokio::test]
async fn empty_store_shows_setup_for_the_bound_ports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open store");
    let reader = store.reader().expect("reader");
    let d = dashboard::build(&reader, Local::now(), &endpoints(), &BudgetsConfig::default())
        .expect("build");
    assert!(!d.has_data);
    assert_eq!(d.today.cost_usd, 0.0);
    assert_eq!(d.cache_hit_ratio, None);
    assert!(d.models.is_empty() && d.sessions_today.is_empty() && d.last_request.is_none());
    assert_eq!(d.daily.len(), 30);
    assert!(d.daily.iter().all(|x| x.cost_usd == 0.0));
    assert_eq!(d.daily[29].date, Local::now().format("%Y-%m-%d").to_string());
    assert_eq!(d.hourly.len(), 24);
    assert_eq!(d.endpoints.otlp_grpc, "127.0.0.1:43171");
    assert!(d.setup_env.contains("export CLAUDE_CODE_ENABLE_TELEMETRY=1"), "{}", d.setup_env);
    assert!(
        d.setup_env.contains("OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:43171"),
        "{}",
        d.setup_env
    );
    assert!(d.setup_env.contains("http://127.0.0.1:43172"), "{}", d.setup_env);
    assert_eq!(d.setup_env, d.endpoints.claude_code_env());
    let json = serde_json::to_value(&d).expect("json");
    assert_eq!(json["has_data"], false);
    assert!(json["cache_hit_ratio"].is_null() && json["last_request"].is_null());
    assert!(json["budgets"].is_null(), "no budget configured: {}", json["budgets"]);
    store.close();
}

/// The budgets the window draws as bars: spend of each configured budget in its period (with
/// the configured week start, which also moves the dashboard's "this week"), per model too.
#[tokio::test]
async fn dashboard_carries_the_budgets_in_their_periods() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open store");
    let now = local(2026, 11, 18, 12, 0); // a Wednesday
    export(
        &store,
        "session-a",
        OPUS,
        usage(1.5, 1.0, 1.0, 1.0, 1.0),
        local(2026, 11, 18, 9, 5),
        true,
    )
    .await;
    export(
        &store,
        "session-b",
        SONNET,
        usage(0.5, 1.0, 1.0, 1.0, 1.0),
        local(2026, 11, 18, 10, 5),
        true,
    )
    .await;
    export(
        &store,
        "session-c",
        OPUS,
        usage(4.0, 1.0, 1.0, 1.0, 1.0),
        local(2026, 11, 15, 20, 0),
        true,
    )
    .await; // Sunday

    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        "[budgets]\nweek_start = \"sunday\"\ndaily = 2.5\nweekly = { limit_usd = 10, thresholds = [50, 100] }\n[budgets.models.claude-opus-5-5]\nmonthly = 5\n",
    )
    .expect("write config");
    let budgets = Config::from_file(&file).expect("config").budgets;
    let reader = Reader::open(dir.path()).expect("reader");
    let d = dashboard::build(&reader, now, &endpoints(), &budgets).expect("build");

    // Weeks start on Sunday here: Sunday's $4 is in this week.
    assert!(close(d.week.cost_usd, 6.0), "week {}", d.week.cost_usd);
    let status = d.budgets.as_ref().expect("budgets configured");
    let find = |period: &str, model: Option<&str>| {
        status
            .budgets
            .iter()
            .find(|b| b.period.name() == period && b.model.as_deref() == model)
            .unwrap_or_else(|| panic!("{period} {model:?} in {status:#?}"))
    };
    let daily = find("daily", None);
    assert!(close(daily.spent_usd, 2.0) && daily.limit_usd == 2.5, "{daily:?}");
    assert_eq!(daily.percent, 80.0);
    assert_eq!(daily.highest_crossed, Some(80));
    let weekly = find("weekly", None);
    assert!(close(weekly.spent_usd, 6.0), "{weekly:?}");
    assert_eq!(weekly.highest_crossed, Some(50));
    let opus = find("monthly", Some(OPUS));
    assert!(close(opus.spent_usd, 5.5), "{opus:?}");
    assert_eq!(opus.highest_crossed, Some(100));
    assert!(status.paused_until.is_none());
    assert!(d.budgets_error.is_none());
    let json = serde_json::to_value(&d).expect("json");
    assert_eq!(json["budgets"]["budgets"].as_array().map(Vec::len), Some(3));
    store.close();
}

/// The Activity list: newest first, each kind described in words, filtered by session and kind.
#[tokio::test]
async fn activity_describes_events_and_filters_them() {
    use tokentray_core::dashboard::activity;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open store");
    let t0 = ns(local(2026, 11, 18, 9, 0));
    let records = vec![
        testkit::event_record(
            "s-1",
            "user_prompt",
            &[("prompt_length", "42"), ("prompt", "<REDACTED>")],
            t0,
        ),
        testkit::api_request_record(
            "s-1",
            "u",
            OPUS,
            usage(0.5, 100.0, 10.0, 1000.0, 0.0),
            t0 + 1_000_000_000,
        ),
        testkit::event_record(
            "s-1",
            "tool_decision",
            &[("tool_name", "Bash"), ("decision", "accept"), ("source", "config")],
            t0 + 2_000_000_000,
        ),
        testkit::event_record(
            "s-1",
            "tool_result",
            &[("tool_name", "Bash"), ("success", "true"), ("duration_ms", "340")],
            t0 + 3_000_000_000,
        ),
        testkit::event_record(
            "s-2",
            "api_error",
            &[("error", "Overloaded"), ("status_code", "529"), ("model", SONNET)],
            t0 + 4_000_000_000,
        ),
    ];
    let ack = store
        .ingest(ingest::logs::normalize(testkit::logs_request(records), 0, Privacy::default()))
        .await
        .expect("stored");
    assert_eq!(ack.rejected, 0);
    let reader = store.reader().expect("reader");

    let all = activity::activity(&reader, None, None, 100).expect("activity");
    let kinds: Vec<&str> = all.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, ["api_error", "tool_result", "tool_decision", "api_request", "user_prompt"]);
    let summaries: Vec<&str> = all.iter().map(|r| r.summary.as_str()).collect();
    assert_eq!(
        summaries,
        [
            "Overloaded (529)",
            "Bash succeeded",
            "Bash: accept (config)",
            "100 in · 10 out · 1000 cache read",
            "prompt of 42 characters"
        ]
    );
    assert_eq!(all[1].figures.duration_ms, Some(340), "a duration sent as a string is read");
    assert_eq!(all[3].figures.cost_usd, Some(0.5));
    assert_eq!(
        serde_json::to_value(&all[1]).expect("json")["duration_ms"],
        340,
        "flattened for the window"
    );

    let tools = activity::activity(&reader, None, Some("tool_result"), 100).expect("activity");
    assert_eq!(tools.len(), 1);
    let s2 = activity::activity(&reader, Some("s-2"), None, 100).expect("activity");
    assert_eq!(s2.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>(), ["api_error"]);
    assert_eq!(activity::activity(&reader, None, None, 2).expect("activity").len(), 2);
    store.close();
}
