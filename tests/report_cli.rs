//! `tokentray report` over a history with known totals (issue 16): every period and grouping,
//! a session that used two models counted in each model's row with its active time, token
//! types only in `--by type`, the totals row, CSV, and money as clean decimals in JSON.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use chrono::{Datelike, Local, NaiveDate, TimeZone, Timelike};
use serde_json::{json, Value};
use tokentray_core::ingest;
use tokentray_core::store::Store;
use tokentray_core::testkit::{self, Usage};

const OPUS: &str = "claude-opus-5-5";
const SONNET: &str = "claude-sonnet-5";

fn tokentray(data: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokentray"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("TOKENTRAY_") {
            cmd.env_remove(&k);
        }
    }
    let config = data.with_extension("toml");
    cmd.arg("--data-dir").arg(data).arg("--config").arg(config).arg("report").args(args);
    cmd.output().expect("runs")
}

fn json_of(data: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = tokentray(data, &all);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

fn usage(usd: f64, input: f64) -> Usage {
    Usage { cost_usd: usd, input, output: 10.0, cache_read: 100.0, cache_creation: 1.0 }
}

/// Today: session `two-models` (opus $1, sonnet $0.50, 600 s active, counted once) and
/// session `small` (sonnet, three requests of $0.0193, 60 s). Yesterday noon: session `old`
/// (opus $2, 30 s).
fn history(data: &Path) {
    let now = Local::now().timestamp_nanos_opt().expect("ns") as u64;
    let yesterday = Local::now().date_naive().pred_opt().expect("yesterday");
    let noon = Local
        .from_local_datetime(&yesterday.and_hms_opt(12, 0, 0).expect("noon"))
        .earliest()
        .expect("local noon")
        .timestamp_nanos_opt()
        .expect("ns") as u64;
    let s = 1_000_000_000u64;
    let mut requests = Vec::new();
    let mut session = |id: &str, t: u64, spends: &[(&str, f64)], active: f64| {
        let mut metrics = vec![
            testkit::session_start_metric(id, "u", t - 5 * s, t - 4 * s),
            testkit::active_time_metric(id, "u", "user", active, t - 4 * s, t - 3 * s),
        ];
        for (i, (model, usd)) in spends.iter().enumerate() {
            let at = t - 2 * s + i as u64 * 1000;
            metrics.extend(testkit::usage_metrics(
                id,
                "u",
                model,
                usage(*usd, 1000.0),
                at - s,
                at,
                false,
            ));
        }
        requests.push((testkit::metrics_request(metrics), t));
    };
    session("two-models", now - 60 * s, &[(OPUS, 1.0), (SONNET, 0.5)], 600.0);
    session("small", now - 30 * s, &[(SONNET, 0.0193), (SONNET, 0.0193), (SONNET, 0.0193)], 60.0);
    session("old", noon, &[(OPUS, 2.0)], 30.0);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let store = Store::open(data).expect("store");
        for (req, t) in requests {
            store.ingest(ingest::metrics::normalize(req, t as i64)).await.expect("ingest");
        }
        store.close();
    });
}

/// Waits out the first and last two minutes of a local day, so "today" holds still.
fn not_near_midnight() {
    let secs = Local::now().num_seconds_from_midnight();
    if secs < 180 {
        std::thread::sleep(Duration::from_secs(u64::from(180 - secs)));
    }
    if secs > 86_400 - 120 {
        std::thread::sleep(Duration::from_secs(u64::from(86_400 - secs) + 180));
    }
}

fn group<'a>(report: &'a Value, key: &str) -> &'a Value {
    report["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["key"] == key))
        .unwrap_or_else(|| panic!("no group {key}: {report}"))
}

#[test]
fn periods_and_groupings_over_a_known_history() {
    not_near_midnight();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    history(&data);
    let today = Local::now().date_naive();
    let yesterday = today.pred_opt().expect("yesterday");

    // Money is the decimal it stands for, not a float sum.
    let r = json_of(&data, &["today"]);
    assert_eq!(r["cost_usd"], json!(1.5579), "{r}");
    assert_eq!(r["sessions"], json!(2));
    assert_eq!(r["active_time_seconds"], json!(660.0));

    // By model: the two-model session counts in both rows, with its active time.
    let r = json_of(&data, &["today", "--by", "model"]);
    let keys: Vec<&str> =
        r["groups"].as_array().expect("groups").iter().filter_map(|g| g["key"].as_str()).collect();
    assert_eq!(keys, [OPUS, SONNET], "no (none) row: {r}");
    assert_eq!(group(&r, OPUS)["cost_usd"], json!(1.0));
    assert_eq!(group(&r, OPUS)["sessions"], json!(1));
    assert_eq!(group(&r, OPUS)["active_time_seconds"], json!(600.0));
    assert_eq!(group(&r, SONNET)["cost_usd"], json!(0.5579));
    assert_eq!(group(&r, SONNET)["sessions"], json!(2));
    assert_eq!(group(&r, SONNET)["active_time_seconds"], json!(660.0));

    // By type: the four token types and nothing else.
    let r = json_of(&data, &["today", "--by", "type"]);
    let keys: Vec<&str> =
        r["groups"].as_array().expect("groups").iter().filter_map(|g| g["key"].as_str()).collect();
    assert_eq!(keys, ["cacheCreation", "cacheRead", "input", "output"], "{r}");
    assert_eq!(group(&r, "input")["tokens"]["input"], json!(5000));

    // By session and by day.
    let r = json_of(&data, &["all", "--by", "session"]);
    assert_eq!(group(&r, "two-models")["cost_usd"], json!(1.5));
    assert_eq!(group(&r, "old")["sessions"], json!(1));
    let r = json_of(&data, &["all", "--by", "day"]);
    assert_eq!(group(&r, &yesterday.to_string())["cost_usd"], json!(2.0));
    assert_eq!(group(&r, &today.to_string())["cost_usd"], json!(1.5579));

    // Yesterday, the same day by date, and --since/--until over it.
    let y = yesterday.to_string();
    for args in [&["yesterday"][..], &[y.as_str()], &["--since", &y, "--until", &y]] {
        let r = json_of(&data, args);
        assert_eq!(r["cost_usd"], json!(2.0), "{args:?}: {r}");
        assert_eq!(r["sessions"], json!(1), "{args:?}");
    }
    let r = json_of(&data, &["--since", &y]);
    assert_eq!(r["cost_usd"], json!(3.5579), "{r}");
    let r = json_of(&data, &["all"]);
    assert_eq!(r["cost_usd"], json!(3.5579));

    // This month and the named month hold both days unless today is the 1st.
    let month = today.format("%Y-%m").to_string();
    let r = json_of(&data, &[&month]);
    let same_month = yesterday.format("%Y-%m").to_string() == month;
    assert_eq!(r["cost_usd"], json!(if same_month { 3.5579 } else { 1.5579 }), "{r}");
    assert_eq!(json_of(&data, &["month"])["cost_usd"], r["cost_usd"]);
    let last = json_of(&data, &["last-month"]);
    assert_eq!(last["cost_usd"], json!(if same_month { 0.0 } else { 2.0 }), "{last}");
    let r = json_of(&data, &["--by", "month", "all"]);
    assert_eq!(group(&r, &month)["cost_usd"], json!(if same_month { 3.5579 } else { 1.5579 }));
    let r = json_of(&data, &["--by", "week", "all"]);
    let weeks: f64 = r["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["cost_usd"].as_f64().unwrap_or(0.0))
        .sum();
    assert!((weeks - 3.5579).abs() < 1e-9, "weeks add up: {r}");

    // This week and last week (weeks start on Monday): on a Monday yesterday is last week's.
    let monday = today.weekday() == chrono::Weekday::Mon;
    let r = json_of(&data, &["week"]);
    assert_eq!(r["cost_usd"], json!(if monday { 1.5579 } else { 3.5579 }), "{r}");
    let r = json_of(&data, &["last-week"]);
    assert_eq!(r["cost_usd"], json!(if monday { 2.0 } else { 0.0 }), "{r}");

    // By hour: today's spend in rows keyed by the local date and hour.
    let r = json_of(&data, &["today", "--by", "hour"]);
    let hours = r["groups"].as_array().expect("groups");
    let day = format!("{today}T");
    for g in hours {
        let key = g["key"].as_str().unwrap_or("");
        assert!(key.starts_with(&day) && key.ends_with(":00"), "hour key {key}: {r}");
    }
    let by_hour: f64 = hours.iter().map(|g| g["cost_usd"].as_f64().unwrap_or(0.0)).sum();
    assert!((by_hour - 1.5579).abs() < 1e-9, "hours add up to today: {r}");
    let sessions: f64 = hours.iter().map(|g| g["sessions"].as_f64().unwrap_or(0.0)).sum();
    assert!(sessions >= 2.0, "each of today's sessions is in an hour row: {r}");
    let _ = NaiveDate::MIN;
}

#[test]
fn table_and_csv_have_token_columns_and_a_total_row() {
    not_near_midnight();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    history(&data);
    let out = tokentray(&data, &["today", "--by", "model"]);
    let table = String::from_utf8_lossy(&out.stdout);
    for column in ["input", "output", "cache read", "cache write", "total", "cost", "sessions"] {
        assert!(table.contains(column), "{column}: {table}");
    }
    let total = table.lines().find(|l| l.trim_start().starts_with("total")).expect("total row");
    assert!(total.contains("$1.56"), "{total}");

    let out = tokentray(&data, &["today", "--by", "model", "--csv"]);
    let csv = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "model,input,output,cache_read,cache_write,total_tokens,cost_usd,sessions,active_seconds"
    );
    assert_eq!(lines.len(), 4, "two models and the total: {csv}");
    assert!(lines[1].starts_with(&format!("{OPUS},1000,10,100,1,1111,1,1,600")), "{csv}");
    assert!(lines[3].starts_with("total,5000,50,500,5,5555,1.5579,2,660"), "{csv}");
}
