//! A damaged history (issue 14): each kind of damage found by attacking `serve` is reported at
//! start in one line that names it and the fix, the file is left as it was (never silently
//! replaced by an empty history, never a "retry later" loop), and `tokentray repair` keeps a copy
//! and recovers what SQLite can read.
//!
//! The history is real: a `serve` that received metrics and events over OTLP/HTTP and stopped.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use prost::Message;
use tokentray_core::testkit::{self, Usage};

#[path = "support/mod.rs"]
mod support;

use support::serve::ServeOptions;
use support::{prom, Serve};

const DB: &str = "tokentray.sqlite3";
const PAGE: u64 = 4096;

fn now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos()
        as u64
}

/// A stopped engine's history: 200 sessions of metrics and 2,000 `api_request` events (enough
/// pages that a damaged one is in the middle), with its totals as `/metrics` and `report` said.
struct History {
    serve: Serve,
    cost_metrics: f64,
    cost_report: f64,
}

fn post(serve: &Serve, path: &str, body: Vec<u8>) {
    let resp = reqwest::blocking::Client::new()
        .post(format!("http://{}{path}", serve.http))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .timeout(Duration::from_secs(30))
        .send()
        .expect("POST");
    assert_eq!(resp.status().as_u16(), 200, "{path}: {}", resp.text().unwrap_or_default());
}

fn history() -> History {
    history_of(Serve::start())
}

/// [`history`] written by the given (just started) `serve`.
fn history_of(mut serve: Serve) -> History {
    let now = now_ns();
    for batch in 0..10 {
        post(&serve, "/v1/metrics", testkit::load_request(100, batch * 20, now).encode_to_vec());
        let records = (0..200)
            .map(|i| {
                let session = format!("session-{batch}-{}", i % 20);
                testkit::api_request_record(&session, "u", testkit::MODEL, Usage::TYPICAL, now - i)
            })
            .collect();
        post(&serve, "/v1/logs", testkit::logs_request(records).encode_to_vec());
    }
    let cost_metrics = cost_in_metrics(&serve.scrape());
    let cost_report = serve.report(&["all", "--json"])["cost_usd"].as_f64().expect("cost_usd");
    assert!(cost_metrics > 0.0 && cost_report > 0.0, "the history has spend");
    serve.stop();
    History { serve, cost_metrics, cost_report }
}

fn cost_in_metrics(body: &str) -> f64 {
    prom::sum(&prom::parse(body), "claude_code_cost_usage_USD_total")
}

/// A copy of the stopped history's data directory, to damage.
fn copy_of(history: &History) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::Builder::new().prefix("tokentray-damaged-").tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    for entry in std::fs::read_dir(&history.serve.data_dir).expect("read data dir") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_file() {
            std::fs::copy(entry.path(), data.join(entry.file_name())).expect("copy");
        }
    }
    (tmp, data)
}

fn overwrite(path: &Path, at: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(path).expect("open to damage");
    f.seek(SeekFrom::Start(at)).expect("seek");
    f.write_all(bytes).expect("damage");
}

/// A page of bytes that is no b-tree page (its type byte, 0xA5, is none of SQLite's).
fn garbage(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if i == 0 {
                0xA5
            } else {
                (state >> 24) as u8
            }
        })
        .collect()
}

/// The middle leaf page of the `events` table.
fn middle_events_page(db: &Path) -> u64 {
    let pages = testkit::table_pages(db, "events");
    assert!(pages.len() >= 8, "the events span many pages: {pages:?}");
    u64::from(pages[pages.len() / 2])
}

fn damage_page(db: &Path, page: u64) {
    overwrite(db, (page - 1) * PAGE, &garbage(PAGE as usize));
}

/// `tokentray serve` on `data`: it must exit by itself; returns how.
fn serve_on(data: &Path) -> Output {
    let config = data.with_file_name("no-config.toml");
    let child = support::serve::command(data, &config)
        .args(support::serve::SERVE_ON_PORT_0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    support::serve::output_within(child, Duration::from_secs(60), "serve on a damaged history")
}

fn tokentray(data: &Path, args: &[&str]) -> Output {
    let config = data.with_file_name("no-config.toml");
    support::serve::command(data, &config).args(args).output().expect("run tokentray")
}

/// Serve refuses the damaged history with one line naming `want`, and changes nothing on disk.
fn assert_refused(data: &Path, want: &str) {
    let db = data.join(DB);
    let wal = data.join(format!("{DB}-wal"));
    // (SQLite may leave an empty `-wal` beside the file after reading it: no change of content.)
    let before = (std::fs::read(&db).expect("read db"), std::fs::read(&wal).unwrap_or_default());
    let out = serve_on(data);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "serve started on a damaged history: {stdout}{stderr}");
    assert!(!stdout.contains("listening"), "no port may be bound: {stdout}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    let line = lines[0];
    assert!(line.contains(&format!("{} is damaged", db.display())), "{line}");
    assert!(line.contains(want), "names the damage ({want}): {line}");
    assert!(line.contains("tokentray repair"), "names the fix: {line}");
    let after = (std::fs::read(&db).expect("read db"), std::fs::read(&wal).unwrap_or_default());
    assert!(
        before == after,
        "the damaged files are left exactly as they were ({want}): db {} → {} bytes, wal {} → {}",
        before.0.len(),
        after.0.len(),
        before.1.len(),
        after.1.len()
    );
}

#[test]
fn every_kind_of_damage_is_refused_at_start_in_one_line_and_left_as_it_was() {
    let history = history();

    // 0 bytes: before, an empty history started in its place without a word.
    let (_t, data) = copy_of(&history);
    std::fs::write(data.join(DB), b"").expect("truncate");
    assert_refused(&data, "empty (0 bytes)");
    let report = tokentray(&data, &["report", "all", "--json"]);
    assert!(!report.status.success(), "report reads no empty history in its place");
    assert_eq!(std::fs::metadata(data.join(DB)).expect("db").len(), 0, "and does not create one");

    // The header (SQLite's magic).
    let (_t, data) = copy_of(&history);
    overwrite(&data.join(DB), 0, b"not a database!\0");
    assert_refused(&data, "header is not a SQLite header");

    // Page 1 past the header: the schema.
    let (_t, data) = copy_of(&history);
    overwrite(&data.join(DB), 100, &garbage(PAGE as usize - 100));
    assert_refused(&data, "SQLite's check says");

    // Page 2: before, every write answered 503 "retry later" forever.
    let (_t, data) = copy_of(&history);
    damage_page(&data.join(DB), 2);
    assert_refused(&data, "SQLite's check says");

    // A middle page (of events): before, accepted and written around until `doctor` noticed.
    let (_t, data) = copy_of(&history);
    let page = middle_events_page(&data.join(DB));
    damage_page(&data.join(DB), page);
    assert_refused(&data, "SQLite's check says");

    // A garbage write-ahead log: before, SQLite dropped it with the commits in it.
    let (_t, data) = copy_of(&history);
    std::fs::write(data.join(format!("{DB}-wal")), garbage(64 * 1024)).expect("write wal");
    assert_refused(&data, "write-ahead log");

    // Cut off mid-page (a copy that did not finish).
    let (_t, data) = copy_of(&history);
    let len = std::fs::metadata(data.join(DB)).expect("db").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(data.join(DB))
        .and_then(|f| f.set_len(len - 1000))
        .expect("truncate");
    assert_refused(&data, "cut off");
}

#[test]
fn doctor_names_repair_for_a_damaged_history() {
    let history = history();
    let (_t, data) = copy_of(&history);
    let page = middle_events_page(&data.join(DB));
    damage_page(&data.join(DB), page);
    let out = tokentray(&data, &["doctor", "--json"]);
    let doctor: serde_json::Value = serde_json::from_slice(&out.stdout).expect("doctor JSON");
    let checks = doctor["checks"].as_array().expect("checks");
    let database = checks.iter().find(|c| c["name"] == "database").expect("a database check");
    assert_eq!(database["status"], "fail", "{database}");
    assert_eq!(database["exit_code"], 14, "the database is damaged: {database}");
    assert!(
        database["fix"].as_str().unwrap_or_default().contains("tokentray repair"),
        "{database}"
    );
}

#[test]
fn repair_keeps_a_copy_and_recovers_what_can_be_read() {
    let history = history();
    let (_t, data) = copy_of(&history);
    let db = data.join(DB);
    let page = middle_events_page(&db);
    damage_page(&db, page);
    let damaged = std::fs::read(&db).expect("read");

    // Beside a running engine, repair is refused (it would write under it).
    let running = Serve::start();
    let refused = tokentray(&running.data_dir, &["repair"]);
    assert!(!refused.status.success(), "repair beside an engine");
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains(&format!("pid {}", running.pid())), "names the engine: {why}");
    drop(running);

    let out = tokentray(&data, &["repair"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "repair: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    // The damaged file is kept byte for byte, where the output says.
    let kept = stdout
        .lines()
        .find_map(|l| l.strip_prefix("kept the damaged file as "))
        .unwrap_or_else(|| panic!("names the copy: {stdout}"));
    assert_eq!(
        std::fs::read(kept).expect("read the copy"),
        damaged,
        "the copy is the damaged file"
    );
    let events_line =
        stdout.lines().find(|l| l.trim_start().starts_with("events ")).expect(&stdout);
    assert!(events_line.contains("some rows could not be read"), "{events_line}");
    let series_line =
        stdout.lines().find(|l| l.trim_start().starts_with("series_state ")).expect(&stdout);
    assert!(
        !series_line.contains("could not"),
        "the running totals were not damaged: {series_line}"
    );

    // The repaired history starts, with the totals it had: only the damaged events' detail is gone.
    let out = serve_then_scrape(&data);
    assert!(
        (cost_in_metrics(&out) - history.cost_metrics).abs() < 1e-9,
        "/metrics after repair: {} (before the damage {})",
        cost_in_metrics(&out),
        history.cost_metrics
    );
    let report = tokentray(&data, &["report", "all", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).expect("report JSON");
    let cost = report["cost_usd"].as_f64().expect("cost_usd");
    assert!(
        (cost - history.cost_report).abs() < 1e-9,
        "report after repair: {cost} vs {}",
        history.cost_report
    );

    // A healthy history is left alone.
    let again = tokentray(&data, &["repair"]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to repair"));
}

#[test]
fn repair_reads_past_a_damaged_header() {
    let history = history();
    let (_t, data) = copy_of(&history);
    overwrite(&data.join(DB), 0, b"not a database!\0");
    let out = tokentray(&data, &["repair"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "repair: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("header was damaged"), "{stdout}");
    assert!(!stdout.contains("could not be read"), "every row comes back: {stdout}");
    let body = serve_then_scrape(&data);
    assert!((cost_in_metrics(&body) - history.cost_metrics).abs() < 1e-9, "{body}");
}

/// Starts `serve` on a repaired history, scrapes `/metrics` once and stops it.
fn serve_then_scrape(data: &Path) -> String {
    let config = data.with_file_name("no-config.toml");
    let mut cmd = support::serve::command(data, &config);
    cmd.args(support::serve::SERVE_ON_PORT_0)
        .env("TOKENTRAY_SERIES_IDLE_HOURS", "0")
        .stderr(Stdio::inherit());
    let (mut child, (_, _, metrics)) =
        support::serve::spawn_listening(cmd, "serve on the repaired history");
    let body = reqwest::blocking::get(format!("http://{metrics}/metrics"))
        .and_then(|r| r.text())
        .expect("GET /metrics");
    let _ = child.kill();
    let _ = child.wait();
    body
}

/// Issue 13: on a year of history SQLite's page check was most of the time to bound ports. A
/// clean stop leaves a stamp of the file it left (store/clean_close.rs), and the next start
/// skips the page check only while the file is exactly that one: a page damaged in place after
/// the stop (the same file, the same size) is still refused before a port is bound.
#[test]
fn a_clean_stop_spares_the_next_start_its_page_check_but_not_a_page_damaged_since() {
    let options = ServeOptions {
        env: vec![("TOKENTRAY_LOG".into(), "info,tokentray_core::store=debug".into())],
        ..ServeOptions::default()
    };
    let mut history = history_of(Serve::start_with(options));
    let serve = &mut history.serve;
    let first = serve.stderr();
    assert!(first.contains("checking every page"), "a first start checks every page: {first}");
    serve.start_again();
    let second = serve.stderr()[first.len()..].to_string();
    assert!(second.contains("no page check"), "after a clean stop the file is trusted: {second}");
    assert!(!second.contains("checking every page"), "{second}");
    assert_eq!(serve.report(&["all", "--json"])["cost_usd"].as_f64(), Some(history.cost_report));
    let db = serve.data_dir.join(DB);
    let page = middle_events_page(&db);
    serve.stop();
    assert!(serve.data_dir.join("clean-close.json").exists(), "a clean stop leaves its stamp");

    // Damage in place: the same inode and size; only the file's change time moved.
    let len = std::fs::metadata(&db).expect("db").len();
    damage_page(&db, page);
    assert_eq!(std::fs::metadata(&db).expect("db").len(), len);
    assert_refused(&serve.data_dir, "SQLite's check says");
}
