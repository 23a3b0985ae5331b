//! Issue 13's migration acceptance: a schema-v4 history is migrated by the real `tokentray
//! serve`, and `report all --json` and every series of `/metrics` are what the history adds up
//! to, exactly; a `kill -9` in the middle of the migration loses nothing, and the next start
//! finishes it.
//!
//! The v4 file is built in the test (`testkit::v4`): the shared generator's sessions, shaped
//! like Claude Code (a `session.id` on every point, DELTA sums, `api_request` events with
//! `request_id`, cost, tokens and the other attributes Claude Code 2.1 sends), written with the
//! v4 writer's statements into the tables migrations 1–4 create. "Before" is what a v4-era
//! engine reports for that history: the generator's own sums (computed while generating, not by
//! reading anything back), per session and in total.
//!
//! The history is sized so that the migration (mostly v11's rewrite of every event's
//! attributes, then the VACUUM) runs for a while: 40 000 events in a 40 MB file; the debug
//! engine took 6.1 s from its start to its listening line on the 2-core machine with other
//! builds running (printed with `--nocapture`, not asserted). The kill waits for the engine's
//! own log line of that step, so it lands inside the migration whatever the machine's speed;
//! the file's schema version after the kill proves it (below the current one). Each test
//! process builds the file once (both tests share it under `cargo test`; nextest builds it per
//! test); the whole file takes about 11 s.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{json, Value};
use tokentray_core::query::report::round_decimal;
use tokentray_core::store::DB_FILE;
use tokentray_core::testkit::{self, v4, year::HistoryPlan, year::HistoryTotals};

#[path = "support/mod.rs"]
mod support;

use support::prom;
use support::serve::{command, parse_listening_line, report, SERVE_ON_PORT_0};

/// What the engine logs when v11's rewrite of the events starts (store/events.rs).
const MIGRATION_STEP_LINE: &str = "storing event attributes compactly";
/// How long an engine may take to migrate and print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// One session as the generator made it: what its series on `/metrics` must show.
struct SessionFigures {
    id: String,
    cost_usd: f64,
    tokens: [(&'static str, f64); 4],
    active_seconds: f64,
}

/// The v4 file and what it holds.
struct History {
    db: PathBuf,
    totals: HistoryTotals,
    sessions: Vec<SessionFigures>,
}

/// 400 hour-long sessions of a heavy user over 20 days (back-dated, ending an hour before the
/// test), four DELTA exports and 100 API requests each: 2 800 series, 8 800 points, 40 000
/// events. Built once for both tests.
fn history() -> &'static History {
    static HISTORY: OnceLock<History> = OnceLock::new();
    HISTORY.get_or_init(|| {
        let plan = HistoryPlan {
            days: 20,
            sessions_per_day: 20,
            exports_per_session: 4,
            api_requests_per_session: 100,
            end_ns: support::now_ns(),
            first_index: 0,
        };
        // A static is never dropped, so a `TempDir` here would leave 39 MB in /tmp on every
        // run: the history lives in the target's scratch dir instead. One per process, because
        // nextest runs each test in a process of its own, at the same time; the dirs of
        // processes that have ended are removed.
        let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        remove_histories_of_ended_processes(&scratch);
        let dir = scratch.join(format!("{HISTORY_DIR_PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the v4 history dir");
        let mut sessions = Vec::new();
        let generated = plan.generate().map(testkit::with_request_details).inspect(|s| {
            let t = s.tokens;
            sessions.push(SessionFigures {
                id: s.session_id.clone(),
                cost_usd: s.cost_usd,
                tokens: [
                    ("input", t.input),
                    ("output", t.output),
                    ("cacheRead", t.cache_read),
                    ("cacheCreation", t.cache_creation),
                ],
                active_seconds: s.active_seconds,
            });
        });
        let totals = v4::write_v4_history(&dir, generated).expect("write the v4 history");
        assert_eq!(totals, plan.totals(), "the file holds the plan's whole history");
        let db = dir.join(DB_FILE);
        assert_eq!(v4::schema_version(&db).expect("version"), v4::SCHEMA);
        eprintln!(
            "v4 history: {} sessions, {} series, {} points, {} events, {} bytes",
            totals.sessions,
            totals.series,
            totals.points,
            totals.records,
            std::fs::metadata(&db).expect("size").len()
        );
        History { db, totals, sessions }
    })
}

const HISTORY_DIR_PREFIX: &str = "migration-v4-history-";

/// Removes the history dirs (`…-PID`) of test processes that are no longer running.
fn remove_histories_of_ended_processes(scratch: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(scratch) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(HISTORY_DIR_PREFIX) else { continue };
        if !std::path::Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A data directory holding a copy of the v4 file, and a config path that does not exist.
struct Copy {
    _dir: tempfile::TempDir,
    data_dir: PathBuf,
    config: PathBuf,
}

impl Copy {
    fn of(history: &History) -> Copy {
        let dir = support::tempdir("tokentray-migration-");
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(&data_dir).expect("data dir");
        std::fs::copy(&history.db, data_dir.join(DB_FILE)).expect("copy the v4 file");
        let config = dir.path().join("no-such-config.toml");
        Copy { _dir: dir, data_dir, config }
    }

    fn db(&self) -> PathBuf {
        self.data_dir.join(DB_FILE)
    }

    fn schema_version(&self) -> i64 {
        v4::schema_version(&self.db()).expect("read the schema version")
    }
}

/// What an engine process says: its stderr, line by line, and its listening line.
enum Said {
    Stderr(String),
    Listening(SocketAddr),
}

/// `tokentray serve` on a copy, every listener on port 0, every series on `/metrics`
/// (`series_idle_hours = 0`: the history is back-dated). Killed on drop.
struct Engine {
    child: Option<Child>,
    said: mpsc::Receiver<Said>,
    stderr: Arc<Mutex<String>>,
    metrics: Option<SocketAddr>,
}

impl Engine {
    fn spawn(copy: &Copy) -> Engine {
        let mut cmd = command(&copy.data_dir, &copy.config);
        cmd.args(SERVE_ON_PORT_0)
            .env("TOKENTRAY_SERIES_IDLE_HOURS", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn tokentray serve");
        let (tx, said) = mpsc::channel();
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().expect("stdout");
        let to_main = tx.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(out).lines();
            if let Some(Ok(line)) = lines.next() {
                if let Some((_, _, metrics)) = parse_listening_line(&line) {
                    let _ = to_main.send(Said::Listening(metrics));
                }
            }
            for _ in lines {}
        });
        let err = child.stderr.take().expect("stderr");
        let log = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                log.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(Said::Stderr(line));
            }
        });
        Engine { child: Some(child), said, stderr, metrics: None }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the listening line (the migration is done by then).
    fn wait_listening(&mut self) {
        loop {
            match self.said.recv_timeout(START_TIMEOUT) {
                Ok(Said::Listening(metrics)) => {
                    self.metrics = Some(metrics);
                    return;
                }
                Ok(Said::Stderr(_)) => {}
                Err(e) => panic!(
                    "serve did not print its listening line within {START_TIMEOUT:?} ({e:?}):\n{}",
                    self.stderr()
                ),
            }
        }
    }

    /// Waits for a stderr line containing `text`; false if the engine finished starting (or
    /// ended) without printing one.
    fn wait_for_line(&mut self, text: &str) -> bool {
        loop {
            match self.said.recv_timeout(START_TIMEOUT) {
                Ok(Said::Stderr(line)) if line.contains(text) => return true,
                Ok(Said::Stderr(_)) => {}
                Ok(Said::Listening(_)) | Err(_) => return false,
            }
        }
    }

    fn kill9(&mut self) {
        let mut child = self.child.take().expect("serve running");
        child.kill().expect("kill -9");
        child.wait().expect("wait after kill -9");
    }

    fn scrape(&self) -> Vec<prom::Sample> {
        let url = format!("http://{}/metrics", self.metrics.expect("listening"));
        let resp = reqwest::blocking::Client::new()
            .get(&url)
            .timeout(Duration::from_secs(30))
            .send()
            .unwrap_or_else(|e| panic!("GET {url}: {e}\n{}", self.stderr()));
        assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
        prom::parse(&resp.text().expect("/metrics body"))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A whole count as the report writes it (an integer), other sums as floats.
fn whole(v: f64) -> Value {
    if v.fract() == 0.0 {
        json!(v as u64)
    } else {
        json!(v)
    }
}

/// `report all --json` of a v4-era engine for this history: the generator's sums in the
/// report's shape (money to the report's 9 decimals). The events' own token sums equal the
/// metrics' (the generator splits each session's calls over its exports), their cost is the
/// same money summed per call.
fn expected_report(t: &HistoryTotals) -> Value {
    let cost = round_decimal(t.cost_usd);
    json!({
        "period": "all",
        "start": null,
        "end": null,
        "cost_usd": cost,
        "tokens": {
            "input": whole(t.input),
            "output": whole(t.output),
            "cacheRead": whole(t.cache_read),
            "cacheCreation": whole(t.cache_creation),
            "total": whole(t.tokens()),
        },
        "sessions": whole(t.sessions as f64),
        "active_time_seconds": round_decimal(t.active_seconds),
        "metrics": {
            "claude_code.active_time.total": whole(round_decimal(t.active_seconds)),
            "claude_code.cost.usage": cost,
            "claude_code.session.count": whole(t.sessions as f64),
            "claude_code.token.usage": whole(t.tokens()),
        },
        "api_requests": {
            "count": t.records,
            "cost_usd": cost,
            "input_tokens": t.input as i64,
            "output_tokens": t.output as i64,
            "cache_read_tokens": t.cache_read as i64,
            "cache_creation_tokens": t.cache_creation as i64,
        },
        "events": { "claude_code.api_request": t.records },
    })
}

/// Every value of a JSON document by its path (`tokens.input`), to name each difference.
fn leaves(v: &Value) -> BTreeMap<String, Value> {
    fn walk(v: &Value, path: String, out: &mut BTreeMap<String, Value>) {
        match v {
            Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    let sub = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                    walk(v, sub, out);
                }
            }
            other => {
                out.insert(path, other.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(v, String::new(), &mut out);
    out
}

/// Checks the migrated history as `report all --json` and `/metrics` show it against what
/// was written; panics listing every difference.
fn check_migrated(history: &History, copy: &Copy, engine: &Engine, context: &str) {
    let mut c = support::Checker::new();
    c.check(copy.schema_version() == v4::CURRENT_SCHEMA, || {
        format!("schema {} after the start, want {}", copy.schema_version(), v4::CURRENT_SCHEMA)
    });

    let got = report(&copy.data_dir, &copy.config, &["all", "--json"]);
    let (got, want) = (leaves(&got), leaves(&expected_report(&history.totals)));
    for path in got.keys().chain(want.keys()).collect::<std::collections::BTreeSet<_>>() {
        c.check(got.get(path) == want.get(path), || {
            format!("report all --json {path}: got {:?}, want {:?}", got.get(path), want.get(path))
        });
    }

    check_metrics(&mut c, history, &engine.scrape());
    if !c.ok() {
        eprintln!("{}", engine.stderr());
    }
    c.assert_ok(context);
}

/// Every series of every family on `/metrics`, session by session, is what the generator sent
/// it (bit for bit: one session's deltas are added in the order they were sent); so is each
/// family's sum, and no other family or series shows.
fn check_metrics(c: &mut support::Checker, history: &History, samples: &[prom::Sample]) {
    const COST: &str = "claude_code_cost_usage_USD_total";
    const TOKENS: &str = "claude_code_token_usage_tokens_total";
    const SESSIONS: &str = "claude_code_session_count_total";
    const ACTIVE: &str = "claude_code_active_time_seconds_total";
    let mut want: BTreeMap<(&str, String, String), f64> = BTreeMap::new();
    for s in &history.sessions {
        want.insert((SESSIONS, s.id.clone(), String::new()), 1.0);
        want.insert((COST, s.id.clone(), String::new()), s.cost_usd);
        for (kind, n) in s.tokens {
            want.insert((TOKENS, s.id.clone(), kind.to_string()), n);
        }
        want.insert((ACTIVE, s.id.clone(), "cli".to_string()), s.active_seconds);
    }
    let mut got: BTreeMap<(&str, String, String), f64> = BTreeMap::new();
    let mut others: BTreeMap<&str, usize> = BTreeMap::new();
    for sample in samples {
        let Some(family) = [COST, TOKENS, SESSIONS, ACTIVE].into_iter().find(|f| *f == sample.name)
        else {
            *others.entry(sample.name.as_str()).or_insert(0) += 1;
            continue;
        };
        let label = |k: &str| sample.labels.get(k).cloned().unwrap_or_default();
        let key = (family, label("session_id"), label("type"));
        if got.insert(key.clone(), sample.value).is_some() {
            c.fail(format!("/metrics shows {key:?} twice"));
        }
    }
    // The resource's `target_info` is no sum; anything else would be a family the v4 history
    // does not hold.
    others.remove("target_info");
    c.check(others.is_empty(), || {
        format!("/metrics families the history does not hold: {others:?}")
    });
    c.check(got.len() == want.len(), || {
        format!(
            "/metrics shows {} series of these families, the history has {}",
            got.len(),
            want.len()
        )
    });
    let mut wrong = 0;
    for (key, value) in &want {
        match got.get(key) {
            Some(v) if v.to_bits() == value.to_bits() => {}
            other => {
                wrong += 1;
                if wrong <= 5 {
                    c.fail(format!("/metrics {key:?}: got {other:?}, want {value}"));
                }
            }
        }
    }
    c.check(wrong <= 5, || format!("… {} more series differ", wrong - 5));

    let t = &history.totals;
    c.num("sum(claude_code_session_count_total)", prom::sum(samples, SESSIONS), t.sessions as f64);
    c.check(prom::sum(samples, TOKENS) == t.tokens(), || {
        format!("sum({TOKENS}) = {}, want {}", prom::sum(samples, TOKENS), t.tokens())
    });
    let by_type = prom::sum_by(samples, TOKENS, &["type"]);
    for (kind, n) in [
        ("input", t.input),
        ("output", t.output),
        ("cacheRead", t.cache_read),
        ("cacheCreation", t.cache_creation),
    ] {
        let got = by_type.get(&vec![kind.to_string()]).copied().unwrap_or(0.0);
        c.check(got == n, || format!("sum by type {kind}: {got}, want {n}"));
    }
    c.check(prom::sum(samples, ACTIVE) == t.active_seconds, || {
        format!("sum({ACTIVE}) = {}, want {}", prom::sum(samples, ACTIVE), t.active_seconds)
    });
    // Money: the same per-session totals added in another order; equal at the report's 9
    // decimals (each series is checked bit for bit above).
    let cost = prom::sum(samples, COST);
    c.check(round_decimal(cost) == round_decimal(t.cost_usd), || {
        format!("sum({COST}) = {cost}, want {}", t.cost_usd)
    });
}

#[test]
fn a_v4_history_reports_the_same_after_the_migration() {
    let history = history();
    let copy = Copy::of(history);
    assert_eq!(copy.schema_version(), v4::SCHEMA);
    let mut engine = Engine::spawn(&copy);
    let started = std::time::Instant::now();
    engine.wait_listening();
    eprintln!(
        "migrated v4 → v{} and listening after {:.1?}",
        v4::CURRENT_SCHEMA,
        started.elapsed()
    );
    check_migrated(history, &copy, &engine, "after the migration");
}

/// Waits after the migration step's start line before the kill, one try after another: a
/// later kill lands deeper inside the step, a shorter wait is tried when the migration had
/// already finished.
const KILL_AFTER_MS: [u64; 5] = [400, 150, 50, 10, 0];

#[test]
fn a_kill_9_in_the_middle_of_the_migration_loses_nothing() {
    let history = history();
    let mut tries = Vec::new();
    let landed = KILL_AFTER_MS.iter().find_map(|&wait_ms| {
        let copy = Copy::of(history);
        let mut engine = Engine::spawn(&copy);
        if !engine.wait_for_line(MIGRATION_STEP_LINE) {
            tries.push(format!(
                "{wait_ms} ms: no {MIGRATION_STEP_LINE:?} line\n{}",
                engine.stderr()
            ));
            return None;
        }
        std::thread::sleep(Duration::from_millis(wait_ms));
        engine.kill9();
        let version = copy.schema_version();
        if version >= v4::CURRENT_SCHEMA {
            tries.push(format!("{wait_ms} ms after the step began: the migration had finished"));
            return None;
        }
        eprintln!("kill -9 {wait_ms} ms into the event step: the file is at schema v{version}");
        Some((copy, version, engine.stderr()))
    });
    let Some((copy, version, killed_stderr)) = landed else {
        panic!(
            "no kill -9 landed inside the migration after {} tries:\n{}",
            KILL_AFTER_MS.len(),
            tries.join("\n")
        );
    };
    // v5–v10 are committed one by one before v11's step; v11 is one transaction.
    assert!(
        (v4::SCHEMA..v4::CURRENT_SCHEMA).contains(&version),
        "schema v{version} after the kill\n{killed_stderr}"
    );

    // The next start finishes the migration from where the file is; nothing is lost.
    let mut engine = Engine::spawn(&copy);
    engine.wait_listening();
    check_migrated(history, &copy, &engine, "after a kill -9 in the migration and a new start");
}
