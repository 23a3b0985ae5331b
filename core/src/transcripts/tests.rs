//! The captured transcripts (`tests/fixtures/claude-code-transcripts`, copied from
//! `shared/fixtures`) against their ground truth, and the file edge cases, through the same
//! report every view reads.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use serde_json::Value;

use super::import::{all_files, Importer, Progress};
use super::TranscriptsConfig;
use crate::pricing::{PriceTable, PricingConfig};
use crate::query::{GroupBy, Report, TimeRange};
use crate::store::{Reader, Store};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/claude-code-transcripts")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixture_dir().join("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("json")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

struct Env {
    _dir: tempfile::TempDir,
    data: PathBuf,
    config_dirs: Vec<PathBuf>,
}

/// A data dir and `n` copies of the captured `~/.claude`.
fn env(copies: usize) -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let config_dirs: Vec<PathBuf> = (0..copies)
        .map(|i| {
            let d = dir.path().join(format!("claude-{i}"));
            copy_tree(&fixture_dir().join("home/.claude"), &d);
            d
        })
        .collect();
    Env { data: dir.path().join("data"), config_dirs, _dir: dir }
}

impl Env {
    fn config(&self) -> TranscriptsConfig {
        TranscriptsConfig { paths: self.config_dirs.clone(), ..TranscriptsConfig::default() }
    }

    fn import(&self) -> Progress {
        std::fs::create_dir_all(&self.data).expect("mkdir");
        let db = self.data.join(crate::store::DB_FILE);
        let mut importer = Importer::open(&db).expect("importer");
        importer.run(&all_files(&self.config()), &AtomicBool::new(false), |_| {}).expect("import")
    }

    fn report(&self, by: Option<GroupBy>) -> Report {
        Reader::open(&self.data).expect("reader").report("all", TimeRange::ALL, by).expect("report")
    }
}

fn assert_matches_expected(r: &Report) {
    let e = expected();
    let t = &r.figures.tokens;
    assert_eq!(t.input, e["tokens"]["input"].as_f64().expect("n"));
    assert_eq!(t.output, e["tokens"]["output"].as_f64().expect("n"));
    assert_eq!(t.cache_read, e["tokens"]["cacheRead"].as_f64().expect("n"));
    assert_eq!(t.cache_creation, e["tokens"]["cacheCreation"].as_f64().expect("n"));
    assert_eq!(r.figures.api_requests.count, e["requests"].as_u64().expect("n"));
    assert_eq!(r.figures.sessions, e["sessions"].as_f64().expect("n"));
    let cost = e["cost_usd_claude_code"].as_f64().expect("n");
    assert!((r.figures.cost_usd - cost).abs() < 1e-9, "{} vs {cost}", r.figures.cost_usd);
    assert_eq!(r.figures.transcripts.cost_usd_price_table, 0.0);
    assert_eq!(r.figures.transcripts.api_errors, e["api_error_lines"].as_u64().expect("n"));
}

#[test]
fn captured_transcripts_give_their_ground_truth() {
    let env = env(1);
    let first = env.import();
    assert_eq!(first.new_requests, 13);
    assert_eq!(first.malformed_lines, 0);
    assert_matches_expected(&env.report(None));
    let by_model = env.report(Some(GroupBy::Model));
    for (model, cost) in expected()["cost_by_model_claude_code"].as_object().expect("obj") {
        let g = by_model
            .groups
            .as_ref()
            .expect("groups")
            .iter()
            .find(|g| &g.key == model)
            .expect("model");
        assert!((g.figures.cost_usd - cost.as_f64().expect("n")).abs() < 1e-9);
    }
    // Nothing is new the second time, and the totals stay.
    assert_eq!(env.import().new_requests, 0);
    assert_matches_expected(&env.report(None));
}

#[test]
fn overlapping_config_dirs_count_each_request_once() {
    let env = env(2);
    env.import();
    assert_matches_expected(&env.report(None));
}

#[test]
fn by_project_branch_and_pr() {
    let env = env(1);
    env.import();
    let e = expected();
    let by_project = env.report(Some(GroupBy::Project));
    let groups = by_project.groups.expect("groups");
    // The captured cwds no longer exist here: each is its own project, named by its last part.
    for session in e["per_session"].as_object().expect("obj").values() {
        let cwd = session["cwd"].as_str().expect("cwd");
        let name = cwd.rsplit('/').next().expect("name");
        let g = groups.iter().find(|g| g.detail.as_deref() == Some(cwd)).expect("project row");
        assert_eq!(g.key, name);
        assert_eq!(g.figures.api_requests.count, session["requests"].as_u64().expect("n"));
    }
    let by_branch = env.report(Some(GroupBy::Branch)).groups.expect("groups");
    assert_eq!(by_branch.len(), 1);
    assert_eq!(by_branch[0].key, "HEAD");
    let by_pr = env.report(Some(GroupBy::Pr)).groups.expect("groups");
    let pr = by_pr.iter().find(|g| g.key == "#42").expect("the PR once");
    assert_eq!(pr.detail.as_deref(), Some("https://github.com/example/repo/pull/42"));
    assert_eq!(pr.figures.api_requests.count, 3);
}

/// A transcript-only session without a cost-state line yet.
fn write_session(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let folder = dir.join("projects/-tmp-live");
    std::fs::create_dir_all(&folder).expect("mkdir");
    let path = folder.join(name);
    std::fs::write(&path, lines.concat()).expect("write");
    path
}

fn assistant(session: &str, req: &str, model: &str, output: u64, marker: &str) -> String {
    format!(
        "{{\"type\":\"assistant\",\"sessionId\":\"{session}\",\"requestId\":\"{req}\",\"timestamp\":\"2026-12-02T05:00:00.000Z\",\"cwd\":\"/tmp/live\",\"gitBranch\":\"main\",\"message\":{{\"id\":\"msg_{req}\",\"model\":\"{model}\",\"content\":[{{\"type\":\"text\",\"text\":\"{marker}\"}}],\"usage\":{{\"input_tokens\":1000,\"output_tokens\":{output},\"cache_read_input_tokens\":0,\"cache_creation_input_tokens\":0}}}}}}\n"
    )
}

#[test]
fn file_edge_cases_give_the_right_totals() {
    let env = env(0);
    let dir = env.data.parent().expect("parent").join("claude");
    let env = Env { config_dirs: vec![dir.clone()], ..env };
    let a = assistant("s1", "r1", "claude-sonnet-4-5", 100, "PROMPT-MARKER-7731");
    let b = assistant("s1", "r2", "claude-sonnet-4-5", 200, "x");
    // Duplicated content-block line, a malformed line, and a half-written last line.
    let path = write_session(
        &dir,
        "s1.jsonl",
        &[a.clone(), a.clone(), "{not json\n".into(), b[..40].to_string()],
    );
    let p = env.import();
    assert_eq!((p.new_requests, p.malformed_lines), (1, 1));
    assert_eq!(env.report(None).figures.tokens.output, 100.0);
    // The last line completed later is read then, once.
    std::fs::write(&path, [a.clone(), a.clone(), "{not json\n".into(), b.clone()].concat())
        .expect("write");
    assert_eq!(env.import().new_requests, 1);
    let r = env.report(None);
    assert_eq!((r.figures.tokens.output, r.figures.api_requests.count), (300.0, 2));
    // Priced from the table (no cost-state yet): 2000 input + 300 output of Sonnet 4.5.
    let priced = (2000.0 * 3.0 + 300.0 * 15.0) / 1e6;
    assert!((r.figures.cost_usd - priced).abs() < 1e-12);
    assert!((r.figures.transcripts.cost_usd_price_table - priced).abs() < 1e-12);
    // Truncated and rewritten with other content: read again, nothing counted twice.
    let c = assistant("s1", "r3", "claude-sonnet-4-5", 50, "y");
    std::fs::write(&path, c.clone()).expect("write");
    env.import();
    assert_eq!(env.report(None).figures.tokens.output, 350.0);
    // Deleted: the history stays.
    std::fs::remove_file(&path).expect("rm");
    env.import();
    assert_eq!(env.report(None).figures.api_requests.count, 3);
    // No text of the transcript reached the database file.
    drop(Store::open(&env.data).expect("checkpoint on open"));
    for entry in std::fs::read_dir(&env.data).expect("ls").flatten() {
        let bytes = std::fs::read(entry.path()).expect("read");
        assert!(!bytes.windows(18).any(|w| w == b"PROMPT-MARKER-7731"), "{:?}", entry.path());
    }
}

#[test]
fn unpriced_model_and_pricing_override() {
    let env = env(0);
    let dir = env.data.parent().expect("parent").join("claude");
    let env = Env { config_dirs: vec![dir.clone()], ..env };
    write_session(&dir, "s2.jsonl", &[assistant("s2", "q1", "claude-opus-5-5", 1_000_000, "x")]);
    env.import();
    let r = env.report(None);
    assert_eq!(r.figures.cost_usd, 0.0);
    assert_eq!(r.figures.transcripts.unpriced_tokens.get("claude-opus-5-5"), Some(&1_001_000.0));
    let overrides: PricingConfig = toml::from_str(
        "[models.claude-opus-5-5]\ninput = 0\noutput = 50\ncache_read = 0\ncache_write_5m = 0\ncache_write_1h = 0\n",
    )
    .expect("toml");
    let reader = Reader::open(&env.data)
        .expect("reader")
        .with_prices(PriceTable::with_overrides(&overrides));
    let r = reader.report("all", TimeRange::ALL, None).expect("report");
    assert_eq!(r.figures.cost_usd, 50.0);
    assert!(r.figures.transcripts.unpriced_tokens.is_empty());
}

#[test]
fn stopped_import_resumes_to_the_same_totals() {
    let env = env(1);
    let files = all_files(&env.config());
    std::fs::create_dir_all(&env.data).expect("mkdir");
    let db = env.data.join(crate::store::DB_FILE);
    let stop = AtomicBool::new(false);
    let mut importer = Importer::open(&db).expect("importer");
    let p = importer
        .run(&files, &stop, |p| {
            if p.files_done == 2 {
                stop.store(true, std::sync::atomic::Ordering::Relaxed)
            }
        })
        .expect("import");
    assert!(p.stopped && p.files_done < p.files_total);
    assert!(env.report(None).figures.api_requests.count < 13);
    env.import();
    assert_matches_expected(&env.report(None));
}

/// Telemetry for the last `seen` requests of the captured `git` session (tokentray started
/// mid-session, or telemetry for part of it), events carrying their `request_id`.
async fn telemetry_for_part_of_session(store: &Store, seen: usize, with_events: bool) -> f64 {
    use crate::ingest::{self, Privacy};
    use crate::testkit::{self, Usage};
    let session = "8255e9da-a4ea-45c0-b0c0-1312c5488bce";
    let file = fixture_dir()
        .join("home/.claude/projects/-home-dev-projects-transcripts-a-git")
        .join(format!("{session}.jsonl"));
    let mut requests: Vec<super::record::Request> = Vec::new();
    for line in std::fs::read(file).expect("read").split(|&b| b == b'\n').filter(|l| !l.is_empty())
    {
        if let Some(r) = super::line::parse_line(line).expect("line").request {
            if !requests.iter().any(|x| x.request_id == r.request_id) {
                requests.push(r);
            }
        }
    }
    assert_eq!(requests.len(), 3);
    let prices = PriceTable::embedded();
    let mut told = 0.0;
    for r in &requests[requests.len() - seen..] {
        let usage_of = |r: &super::record::Request| crate::pricing::Usage {
            input: r.input,
            output: r.output,
            cache_read: r.cache_read,
            cache_write_5m: r.cache_write_5m,
            cache_write_1h: r.cache_write_1h,
            fast: r.fast,
        };
        let cost =
            prices.cost(crate::pricing::CLAUDE_CODE, &r.model, &usage_of(r)).expect("priced");
        told += cost;
        let usage = Usage {
            cost_usd: cost,
            input: r.input as f64,
            output: r.output as f64,
            cache_read: r.cache_read as f64,
            cache_creation: (r.cache_write_5m + r.cache_write_1h) as f64,
        };
        let t = r.time_ns as u64;
        let metrics =
            testkit::usage_metrics(session, "u", &r.model, usage, t - 1_000_000, t, false);
        store
            .ingest(ingest::metrics::normalize(testkit::metrics_request(metrics), t as i64))
            .await
            .expect("ingest");
        if with_events {
            let mut record = testkit::api_request_record(session, "u", &r.model, usage, t);
            record.attributes.push(testkit::kv("request_id", &r.request_id));
            let logs = testkit::logs_request(vec![record]);
            store
                .ingest(ingest::logs::normalize(logs, t as i64, Privacy::default()))
                .await
                .expect("ingest");
        }
    }
    told
}

#[tokio::test]
async fn telemetry_and_transcripts_count_each_request_once() {
    for (seen, with_events) in [(3, true), (2, true), (2, false)] {
        let env = env(1);
        let store = Store::open(&env.data).expect("store");
        let told = telemetry_for_part_of_session(&store, seen, with_events).await;
        let telemetry_only = env.report(None);
        assert!((telemetry_only.figures.cost_usd - told).abs() < 1e-12);
        env.import();
        // Telemetry's own figures are kept; the transcripts add only what it did not see.
        assert_matches_expected(&env.report(None));
        store.close();
    }
}

#[test]
fn budgets_see_transcript_only_spend() {
    let env = env(0);
    let dir = env.data.parent().expect("parent").join("claude");
    let env = Env { config_dirs: vec![dir.clone()], ..env };
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let line = assistant("s3", "b1", "claude-sonnet-4-5", 100_000, "x")
        .replace("2026-12-02T05:00:00.000Z", &now);
    write_session(&dir, "s3.jsonl", &[line]);
    env.import();
    let budgets: crate::config::BudgetsConfig = toml::from_str("daily = 1").expect("toml");
    let reader = Reader::open(&env.data).expect("reader");
    let status = crate::budget::status(&reader, &budgets, &chrono::Local::now()).expect("status");
    let daily = &status.budgets[0];
    // 1000 input + 100k output of Sonnet 4.5, priced from the table: past 100 % of $1.
    let spent = (1000.0 * 3.0 + 100_000.0 * 15.0) / 1e6;
    assert!((daily.spent_usd - spent).abs() < 1e-9, "{}", daily.spent_usd);
    assert_eq!(daily.highest_crossed, Some(100));
}

#[tokio::test]
async fn doctor_finds_a_session_telemetry_saw_only_half_of() {
    let env = env(1);
    let store = Store::open(&env.data).expect("store");
    telemetry_for_part_of_session(&store, 2, true).await;
    env.import();
    let reader = Reader::open(&env.data).expect("reader");
    let found = reader.disagreeing_sessions().expect("reconcile");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].session_id, "8255e9da-a4ea-45c0-b0c0-1312c5488bce");
    assert_eq!((found[0].telemetry_only, found[0].transcripts_only), (0, 1));
    store.close();
}

/// The dashboard's last request is the newest of either source: a request only the
/// transcripts saw (with Claude Code's cost-state money, or the table's price without one),
/// until a newer telemetry event arrives; a transcript request telemetry also saw is
/// telemetry's event.
#[test]
fn newest_request_is_the_newest_of_either_source() {
    use crate::ingest::{self, Privacy};
    use crate::testkit::{self, kv, Usage};
    let env = env(1);
    env.import();
    let newest = Reader::open(&env.data).expect("reader").newest_request().expect("newest");
    let newest = newest.expect("a request from the transcripts");
    assert!(newest.from_transcripts);
    // The captured sessions' newest request: b/hi's single Opus request, cost-state covered.
    let e = expected();
    let hi = &e["per_session"]["77eb25e3-2de8-440b-8f11-668bc735ad21"];
    let f = &newest.figures;
    assert_eq!(f.session_id.as_deref(), Some("77eb25e3-2de8-440b-8f11-668bc735ad21"));
    assert_eq!(f.model.as_deref(), Some("claude-opus-5-5"));
    assert_eq!(f.input_tokens, hi["tokens"]["input"].as_i64());
    assert_eq!(f.output_tokens, hi["tokens"]["output"].as_i64());
    assert_eq!(f.cache_read_tokens, hi["tokens"]["cacheRead"].as_i64());
    assert_eq!(f.cache_creation_tokens, hi["tokens"]["cacheCreation"].as_i64());
    let stated = hi["cost_state_usd"].as_f64().expect("n");
    assert!((f.cost_usd.expect("cost") - stated).abs() < 1e-12, "{f:?}");

    // A later transcript-only request without a cost-state: the table's price.
    let dir = &env.config_dirs[0];
    let late = assistant("s9", "r9", "claude-sonnet-4-5", 300, "x")
        .replace("2026-12-02T05:00:00.000Z", "2026-12-03T05:00:00.000Z");
    write_session(dir, "s9.jsonl", &[late]);
    env.import();
    let reader = Reader::open(&env.data).expect("reader");
    let n = reader.newest_request().expect("newest").expect("some");
    assert!(n.from_transcripts);
    assert_eq!(
        (n.figures.model.as_deref(), n.figures.output_tokens),
        (Some("claude-sonnet-4-5"), Some(300))
    );
    let priced = (1000.0 * 3.0 + 300.0 * 15.0) / 1e6;
    assert!((n.figures.cost_usd.expect("priced") - priced).abs() < 1e-12);
    // An unpriced model: its tokens, no cost.
    let unknown = assistant("s10", "r10", "claude-unknown-9", 7, "x")
        .replace("2026-12-02T05:00:00.000Z", "2026-12-03T06:00:00.000Z");
    write_session(dir, "s10.jsonl", &[unknown]);
    env.import();
    let n =
        Reader::open(&env.data).expect("reader").newest_request().expect("newest").expect("some");
    assert_eq!((n.figures.output_tokens, n.figures.cost_usd), (Some(7), None));

    // Telemetry: an older event does not replace it; the same request id as the newest
    // transcript request, or a newer event, is telemetry's.
    let store = Store::open(&env.data).expect("store");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let ts = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s).expect("ts").timestamp_nanos_opt().expect("ns")
            as u64
    };
    let send = |session: &str, id: &str, t: u64| {
        let mut r = testkit::api_request_record(session, "u", testkit::MODEL, Usage::TYPICAL, t);
        r.attributes.push(kv("request_id", id));
        let batch = ingest::logs::normalize(
            testkit::logs_request(vec![r]),
            ingest::now_ns(),
            Privacy::default(),
        );
        rt.block_on(store.ingest(batch)).expect("ingest");
    };
    send("old", "req_old", ts("2026-12-01T00:00:00Z"));
    let n = store.reader().expect("reader").newest_request().expect("newest").expect("some");
    assert_eq!(n.figures.session_id.as_deref(), Some("s10"));
    send("s10", "r10", ts("2026-12-03T05:59:59Z"));
    let n = store.reader().expect("reader").newest_request().expect("newest").expect("some");
    assert!(!n.from_transcripts, "the request telemetry saw is telemetry's: {n:?}");
    assert_eq!(n.figures.cost_usd, Some(Usage::TYPICAL.cost_usd));
    send("new", "req_new", ts("2026-12-04T00:00:00Z"));
    let n = store.reader().expect("reader").newest_request().expect("newest").expect("some");
    assert_eq!((n.from_transcripts, n.figures.session_id.as_deref()), (false, Some("new")));
    store.close();
}

/// A session's sums (store/transcript_sums.rs) stand in for its requests only where they are
/// the counting rule's outcome: each grouping that reads them gives what reading every request
/// (by day) gives, with telemetry for part of a session (with and without its events), a
/// session without a cost-state, one whose cost-state covers only its first request, and a
/// session without requests.
#[tokio::test]
async fn session_sums_give_what_reading_every_request_gives() {
    for with_events in [true, false] {
        let env = env(1);
        let store = Store::open(&env.data).expect("store");
        telemetry_for_part_of_session(&store, 2, with_events).await;
        let dir = &env.config_dirs[0];
        let later = |line: String| line.replace("05:00:00.000Z", "06:00:00.000Z");
        // Above the long-context threshold: priced at the long-context rates.
        let long = assistant("s5", "p3", "claude-sonnet-4-5", 10, "x")
            .replace("\"input_tokens\":1000", "\"input_tokens\":250000");
        let unstated = [
            assistant("s5", "p1", "claude-sonnet-4-5", 100, "x"),
            later(assistant("s5", "p2", "claude-sonnet-4-5", 200, "x")),
            long,
        ];
        write_session(dir, "s5.jsonl", &unstated);
        let cost_state = "{\"type\":\"cost-state\",\"sessionId\":\"s6\",\"totalCostUSD\":0.5,\"modelUsage\":{\"claude-sonnet-4-5\":{\"costUSD\":0.5}}}\n";
        let partly_stated = [
            assistant("s6", "q1", "claude-sonnet-4-5", 100, "x"),
            cost_state.to_string(),
            later(assistant("s6", "q2", "claude-sonnet-4-5", 300, "x")),
        ];
        write_session(dir, "s6.jsonl", &partly_stated);
        env.import();
        let reader = Reader::open(&env.data).expect("reader");

        // The premise: some sessions are summed, the others read request by request.
        let period = reader.period_sessions(i64::MIN, i64::MAX).expect("split");
        let mut summed: Vec<&str> = period.summed.iter().map(|s| s.session_id.as_str()).collect();
        summed.sort();
        summed.dedup();
        let captured_with_requests = [
            "525995f9-df9f-4ea7-94b0-1dfc603afaf1",
            "77eb25e3-2de8-440b-8f11-668bc735ad21",
            "7c6e1e92-4a19-4ed3-a17d-44945c0e4e4b",
            "c370a214-dcea-4967-9770-35cf2e0370fe",
        ];
        assert_eq!(summed, [&captured_with_requests[..], &["s5"]].concat());
        for rest in ["8255e9da-a4ea-45c0-b0c0-1312c5488bce", "s6"] {
            assert!(period.rest.iter().any(|s| s == rest), "{rest} in {:?}", period.rest);
        }

        let every_request = reader.report("all", TimeRange::ALL, Some(GroupBy::Day)).expect("r");
        let want = &every_request.figures;
        assert!(want.transcripts.cost_usd_price_table > 0.0, "s5 and s6's last: the table");
        let s5 = |r: &Report| {
            let groups = r.groups.as_ref().expect("groups");
            groups.iter().find(|g| g.key == "s5").expect("s5").figures.cost_usd
        };
        let summed_s5 = reader.report("all", TimeRange::ALL, Some(GroupBy::Session));
        let long_rate = (250_000.0 * 6.0 + 10.0 * 22.5) / 1e6;
        let short_rate = (2000.0 * 3.0 + 300.0 * 15.0) / 1e6;
        assert!((s5(&summed_s5.expect("r")) - (long_rate + short_rate)).abs() < 1e-12);
        for by in [
            None,
            Some(GroupBy::Project),
            Some(GroupBy::Session),
            Some(GroupBy::Model),
            Some(GroupBy::Branch),
            Some(GroupBy::Pr),
            Some(GroupBy::Agent),
        ] {
            let got = reader.report("all", TimeRange::ALL, by).expect("report");
            let f = &got.figures;
            let what = format!("{by:?} (events: {with_events})");
            assert_eq!(f.tokens.input, want.tokens.input, "{what}");
            assert_eq!(f.tokens.output, want.tokens.output, "{what}");
            assert_eq!(f.tokens.cache_read, want.tokens.cache_read, "{what}");
            assert_eq!(f.tokens.cache_creation, want.tokens.cache_creation, "{what}");
            assert_eq!(f.api_requests.count, want.api_requests.count, "{what}");
            assert_eq!(f.sessions, want.sessions, "{what}");
            assert_eq!(f.transcripts.requests, want.transcripts.requests, "{what}");
            assert!((f.cost_usd - want.cost_usd).abs() < 1e-9, "{what}");
            let (a, b) = (&f.transcripts, &want.transcripts);
            assert!((a.cost_usd_claude_code - b.cost_usd_claude_code).abs() < 1e-9, "{what}");
            assert!((a.cost_usd_price_table - b.cost_usd_price_table).abs() < 1e-9, "{what}");
            let groups = got.groups.unwrap_or_default();
            let in_groups: f64 = groups.iter().map(|g| g.figures.cost_usd).sum();
            if by.is_some() {
                assert!((in_groups - want.cost_usd).abs() < 1e-9, "{what}: groups add up");
            }
        }

        // By session, a summed session is its stated cost and its requests.
        let by_session = reader.report("all", TimeRange::ALL, Some(GroupBy::Session)).expect("r");
        let e = expected();
        for id in captured_with_requests {
            let g = by_session.groups.as_ref().expect("groups").iter().find(|g| g.key == id);
            let g = g.expect("session row");
            let truth = &e["per_session"][id];
            assert_eq!(g.figures.api_requests.count, truth["requests"].as_u64().expect("n"));
            let stated = truth["cost_state_usd"].as_f64().expect("n");
            assert!((g.figures.cost_usd - stated).abs() < 1e-12, "{id}");
            assert_eq!(g.figures.sessions, 1.0, "{id}");
        }

        // A period that ends at a summed session's last request reads that session request by
        // request, and still gives what the per-request path gives.
        let (id, last) = period
            .summed
            .iter()
            .map(|s| (s.session_id.clone(), s.time_ns))
            .max_by_key(|(_, t)| *t)
            .expect("summed");
        let cut = TimeRange { start_ns: None, end_ns: Some(last) };
        let split = reader.period_sessions(i64::MIN, last).expect("split");
        assert!(split.rest.contains(&id) && split.summed.iter().all(|s| s.session_id != id));
        let want = reader.report("cut", cut, Some(GroupBy::Day)).expect("report").figures;
        let got = reader.report("cut", cut, Some(GroupBy::Project)).expect("report").figures;
        assert_eq!(got.api_requests.count, want.api_requests.count);
        assert!(got.api_requests.count < every_request.figures.api_requests.count);
        assert_eq!(got.tokens.output, want.tokens.output);
        assert_eq!(got.sessions, want.sessions);
        assert!((got.cost_usd - want.cost_usd).abs() < 1e-9);
        store.close();
    }
}
