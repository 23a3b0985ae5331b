//! Live following of Claude Code's transcripts by a running `serve` (file-system notifications):
//! a line appended to a transcript, a session in a new project folder, and a half-written line
//! completed later all reach `report --json` with the right totals. The delay is measured by the
//! ignored `append_to_visible_delay` (BENCHMARKS.md), never asserted.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::serve::ServeOptions;
use support::{eventually, Checker, Serve};

const FIXTURE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/claude-code-transcripts");
/// Requests in the captured transcripts (their expected.json).
const CAPTURED_REQUESTS: u64 = 13;
const TIMEOUT: Duration = Duration::from_secs(20);

/// A HOME holding the captured `~/.claude`, and `serve` reading it.
struct Live {
    home: tempfile::TempDir,
    serve: Serve,
}

impl Live {
    fn start() -> Live {
        let home = support::tempdir("tokentray-home-");
        let claude = home.path().join(".claude");
        support::copy_tree(&Path::new(FIXTURE).join("home/.claude"), &claude);
        let env = vec![
            ("HOME".to_string(), home.path().display().to_string()),
            ("CLAUDE_CONFIG_DIR".to_string(), claude.display().to_string()),
        ];
        let serve = Serve::start_with(ServeOptions { env, ..ServeOptions::default() });
        let live = Live { home, serve };
        live.wait_for(CAPTURED_REQUESTS, None);
        live
    }

    fn projects(&self) -> PathBuf {
        self.home.path().join(".claude/projects")
    }

    /// The first captured session file (the shape of a real CLI transcript).
    fn captured_session(&self) -> PathBuf {
        let dir = std::fs::read_dir(self.projects()).expect("ls").flatten().next().expect("dir");
        let file = std::fs::read_dir(dir.path()).expect("ls").flatten();
        file.map(|e| e.path()).find(|p| p.extension().is_some_and(|e| e == "jsonl")).expect("file")
    }

    fn totals(&self) -> (u64, u64) {
        let r: Value = self.serve.report(&["all", "--json"]);
        let count = r["api_requests"]["count"].as_u64().expect("count");
        (count, r["tokens"]["output"].as_u64().expect("output tokens"))
    }

    /// Waits until `report --json` shows `requests` (and, if given, `output` tokens).
    fn wait_for(&self, requests: u64, output: Option<u64>) -> (u64, u64) {
        let mut last = (0, 0);
        let c = eventually(TIMEOUT, || {
            let mut c = Checker::new();
            last = self.totals();
            c.check(last.0 == requests, || format!("requests: {} (want {requests})", last.0));
            if let Some(want) = output {
                c.check(last.1 == want, || format!("output tokens: {} (want {want})", last.1));
            }
            c
        });
        assert!(c.ok(), "{:?}\n{}", c.errors, self.serve.stderr());
        last
    }
}

/// One `assistant` line of a new request, shaped like the CLI's.
fn assistant(session: &str, req: &str, output: u64) -> String {
    format!(
        "{{\"parentUuid\":null,\"isSidechain\":false,\"type\":\"assistant\",\"sessionId\":\"{session}\",\"requestId\":\"req_{req}\",\"uuid\":\"u-{req}\",\"timestamp\":\"2026-12-02T05:00:00.000Z\",\"cwd\":\"/tmp/live-project\",\"gitBranch\":\"main\",\"version\":\"2.1.330\",\"message\":{{\"id\":\"msg_{req}\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[{{\"type\":\"text\",\"text\":\"ok\"}}],\"stop_reason\":\"end_turn\",\"usage\":{{\"input_tokens\":10,\"output_tokens\":{output},\"cache_read_input_tokens\":0,\"cache_creation_input_tokens\":0}}}}}}\n"
    )
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open");
    f.write_all(text.as_bytes()).expect("append");
}

#[test]
fn serve_follows_appended_lines_and_new_projects() {
    let live = Live::start();
    let (_, output) = live.totals();
    // A new request appended to a captured session.
    append(&live.captured_session(), &assistant("live-1", "live-a", 123));
    live.wait_for(CAPTURED_REQUESTS + 1, Some(output + 123));
    // A new session in a new project folder.
    let project = live.projects().join("-tmp-live-project");
    std::fs::create_dir_all(&project).expect("mkdir");
    append(&project.join("live-2.jsonl"), &assistant("live-2", "live-b", 45));
    live.wait_for(CAPTURED_REQUESTS + 2, Some(output + 168));
}

#[test]
fn a_half_written_line_completed_later_counts_once() {
    let live = Live::start();
    let (_, output) = live.totals();
    let path = live.captured_session();
    let complete = assistant("live-1", "live-c", 7);
    let half = assistant("live-1", "live-d", 11);
    let (first, rest) = half.split_at(half.len() / 2);
    // A complete line and the first half of the next: the complete one is read, the half waits.
    append(&path, &format!("{complete}{first}"));
    live.wait_for(CAPTURED_REQUESTS + 1, Some(output + 7));
    append(&path, rest);
    live.wait_for(CAPTURED_REQUESTS + 2, Some(output + 18));
    // Nothing more arrives later (no line read twice).
    append(&path, &assistant("live-1", "live-e", 1));
    live.wait_for(CAPTURED_REQUESTS + 3, Some(output + 19));
}

/// BENCHMARKS.md: the delay from appending a request's line to `report --json` showing it.
/// `cargo test --test transcripts_follow -- --ignored --nocapture append_to_visible_delay`
#[test]
#[ignore = "a measurement for BENCHMARKS.md"]
fn append_to_visible_delay() {
    let live = Live::start();
    let path = live.captured_session();
    let mut delays = Vec::new();
    for i in 0..20u64 {
        let started = Instant::now();
        append(&path, &assistant("live-bench", &format!("bench-{i}"), 1));
        while live.totals().0 < CAPTURED_REQUESTS + i + 1 {
            assert!(started.elapsed() < TIMEOUT, "append {i} never showed");
            std::thread::sleep(Duration::from_millis(5));
        }
        delays.push(started.elapsed());
    }
    delays.sort();
    println!("append→visible over 20 appends: median {:?}, max {:?}", delays[10], delays[19]);
}
