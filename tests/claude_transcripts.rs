//! Issue 15's acceptance with the real Claude Code CLI: its transcripts (written under a throwaway
//! HOME) read by `tokentray import`, alone and beside its telemetry, grouped by the projects and
//! branches of the folders the CLI ran in, and followed live by a running `serve` up to the
//! dashboard API. Ground truth: the stand-in's fixed usage times the calls it answered, and
//! Claude Code's own cost as its `cost-state` lines state it (read from the transcript files
//! here), which telemetry's cost must equal.
//!
//! The only allowed skip: the CLI binary is missing after setup (npm unreachable).
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::anthropic::{StandIn, Usage};
use support::claude::{claude_or_skip, run_claude_at};
use support::serve::ServeOptions;
use support::{eventually, tempdir, Checker, Serve};

const REPLY: &str = "hi from the transcripts' stand-in";
const USAGE: Usage = Usage { input: 2222, output: 31, cache_read: 7777, cache_creation: 666 };
const PROMPTS: [&str; 2] = ["say hi", "say hi again"];

/// A throwaway HOME for the CLI; its transcripts land in `home/.claude/projects/` (or in the
/// `projects/` of its own `CLAUDE_CONFIG_DIR`, see [`ClaudeHome::with_config_dir`]).
struct ClaudeHome {
    _dir: tempfile::TempDir,
    home: PathBuf,
    config_dir: PathBuf,
    /// `CLAUDE_CONFIG_DIR` given to the CLI, if not the default `~/.claude`.
    custom_config_dir: bool,
}

impl ClaudeHome {
    fn new() -> ClaudeHome {
        let dir = tempdir("tokentray-transcripts-home-");
        let home = dir.path().join("home");
        let config_dir = home.join(".claude");
        std::fs::create_dir_all(&config_dir).unwrap();
        ClaudeHome { _dir: dir, home, config_dir, custom_config_dir: false }
    }

    /// A HOME whose CLI runs with `CLAUDE_CONFIG_DIR` set to an empty folder outside it (as
    /// before a first session: no `projects/` yet).
    fn with_config_dir() -> ClaudeHome {
        let dir = tempdir("tokentray-transcripts-home-");
        let home = dir.path().join("home");
        let config_dir = dir.path().join("claude-config");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&config_dir).unwrap();
        ClaudeHome { _dir: dir, home, config_dir, custom_config_dir: true }
    }

    fn config_dir(&self) -> PathBuf {
        self.config_dir.clone()
    }

    /// A tokentray config that reads exactly this HOME's transcripts.
    fn config_toml(&self) -> String {
        format!("[transcripts]\npaths = [{:?}]\n", self.config_dir().display().to_string())
    }

    /// `claude -p prompt`, telemetry to `otel` (protocol, endpoint) or off; asserts it answered.
    fn run(&self, bin: &Path, api: &StandIn, otel: Option<(&str, &str)>, prompt: &str) {
        self.run_with(bin, api, otel, prompt, &[]);
    }

    /// [`ClaudeHome::run`] with extra environment for the CLI.
    fn run_with(
        &self,
        bin: &Path,
        api: &StandIn,
        otel: Option<(&str, &str)>,
        prompt: &str,
        env: &[(&str, &str)],
    ) {
        self.run_at(bin, api, None, otel, prompt, env);
    }

    /// [`ClaudeHome::run_with`] in the working directory `cwd` (else a fresh empty folder);
    /// returns how many calls the stand-in answered for this session.
    fn run_at(
        &self,
        bin: &Path,
        api: &StandIn,
        cwd: Option<&Path>,
        otel: Option<(&str, &str)>,
        prompt: &str,
        env: &[(&str, &str)],
    ) -> u64 {
        let before = api.calls();
        let config_dir = self.config_dir.display().to_string();
        let mut env = env.to_vec();
        if self.custom_config_dir {
            env.insert(0, ("CLAUDE_CONFIG_DIR", &config_dir));
        }
        let run = run_claude_at(bin, api, &self.home, cwd, otel, prompt, &env);
        assert!(
            run.status.success() && run.stdout.contains(REPLY),
            "claude -p {prompt:?} in {cwd:?} failed\n{}\nstand-in log: {:?}",
            run.describe(),
            api.log()
        );
        assert!(api.calls() > before, "claude -p never called the stand-in: {:?}", api.log());
        api.calls() - before
    }

    /// Claude Code's own cost per session: the last `cost-state` line's `totalCostUSD` of each
    /// session in the transcript files.
    fn cost_states(&self) -> BTreeMap<String, f64> {
        let mut costs = BTreeMap::new();
        for file in jsonl_files(&self.config_dir().join("projects")) {
            for line in std::fs::read_to_string(&file).unwrap().lines() {
                let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
                if v["type"] == "cost-state" {
                    let session = v["sessionId"].as_str().unwrap_or_default().to_string();
                    costs.insert(session, v["totalCostUSD"].as_f64().unwrap());
                }
            }
        }
        costs
    }

    /// Each session's first `cwd` and `gitBranch`, as the CLI wrote them in its transcripts.
    fn recorded_places(&self) -> BTreeMap<String, (String, Option<String>)> {
        let mut places = BTreeMap::new();
        for file in jsonl_files(&self.config_dir().join("projects")) {
            for line in std::fs::read_to_string(&file).unwrap().lines() {
                let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
                let (Some(session), Some(cwd)) = (v["sessionId"].as_str(), v["cwd"].as_str())
                else {
                    continue;
                };
                let branch = v["gitBranch"].as_str().map(str::to_string);
                places.entry(session.to_string()).or_insert((cwd.to_string(), branch));
            }
        }
        places
    }
}

fn jsonl_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(jsonl_files(&path));
        } else if path.extension().is_some_and(|e| e == "jsonl") {
            out.push(path);
        }
    }
    out
}

/// `tokentray import` on `data_dir` with `config`; returns (success, stdout, stderr).
fn import(data_dir: &Path, config: &Path, home: &Path) -> (bool, String, String) {
    let out = support::serve::command(data_dir, config)
        .env("HOME", home)
        .env_remove("CLAUDE_CONFIG_DIR")
        .arg("import")
        .output()
        .expect("run tokentray import");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// The report's tokens, requests and sessions against the stand-in's `calls` answers in
/// `sessions` sessions, and its cost against `cost`.
fn check_totals(r: &Value, calls: u64, sessions: usize, cost: f64) -> Checker {
    let mut c = Checker::new();
    for (k, per_call) in [
        ("input", USAGE.input),
        ("output", USAGE.output),
        ("cacheRead", USAGE.cache_read),
        ("cacheCreation", USAGE.cache_creation),
    ] {
        c.num(format!("report tokens.{k}"), f(&r["tokens"][k]), (per_call * calls) as f64);
    }
    c.num("report api_requests.count", f(&r["api_requests"]["count"]), calls as f64);
    c.num("report sessions", f(&r["sessions"]), sessions as f64);
    c.num("report cost_usd vs Claude Code's cost-state", f(&r["cost_usd"]), cost);
    c
}

/// Telemetry off: only the transcripts know these sessions, and `import` on a fresh data dir
/// finds every request with the stand-in's exact usage and Claude Code's own cost.
#[test]
fn telemetry_off_import_gives_every_request_and_claude_codes_cost() {
    let Some(bin) = claude_or_skip() else { return };
    let api = StandIn::start(USAGE, REPLY);
    let claude = ClaudeHome::new();
    for prompt in PROMPTS {
        claude.run(&bin, &api, None, prompt);
    }
    let costs = claude.cost_states();
    assert_eq!(costs.len(), PROMPTS.len(), "one cost-state per `claude -p` session: {costs:?}");

    let dir = tempdir("tokentray-transcripts-data-");
    let (data_dir, config) = (dir.path().join("data"), dir.path().join("config.toml"));
    std::fs::write(&config, claude.config_toml()).unwrap();
    let (ok, stdout, stderr) = import(&data_dir, &config, &claude.home);
    assert!(ok, "tokentray import failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    eprintln!("import of {} sessions, {} API calls: {}", PROMPTS.len(), api.calls(), stdout.trim());

    let r = support::serve::report(&data_dir, &config, &["all", "--json"]);
    let c = check_totals(&r, api.calls(), PROMPTS.len(), costs.values().sum());
    if !c.ok() {
        eprintln!("import: {stdout}\nreport: {r:#}\nstand-in log: {:?}", api.log());
    }
    c.assert_ok("telemetry off, after `tokentray import`");
}

/// The figures a user reads, to compare two reports exactly.
fn totals(r: &Value) -> Value {
    serde_json::json!({
        "tokens": r["tokens"], "requests": r["api_requests"]["count"],
        "sessions": r["sessions"], "cost_usd": r["cost_usd"],
    })
}

fn serve_reading(claude: &ClaudeHome) -> Serve {
    Serve::start_with(ServeOptions {
        config_toml: Some(claude.config_toml()),
        env: vec![("HOME".into(), claude.home.display().to_string())],
        ..ServeOptions::default()
    })
}

/// A stand-in, a CLI home and a `serve` that reads that home's transcripts.
fn telemetry_to_serve() -> (StandIn, ClaudeHome, Serve) {
    let claude = ClaudeHome::new();
    let serve = serve_reading(&claude);
    (StandIn::start(USAGE, REPLY), claude, serve)
}

/// Telemetry on, to a running `serve`: importing the same sessions' transcripts beside the running
/// engine changes nothing (every request once; telemetry's totals, to the cent).
#[test]
fn telemetry_on_then_import_beside_the_engine_keeps_telemetrys_totals() {
    let Some(bin) = claude_or_skip() else { return };
    let (api, claude, serve) = telemetry_to_serve();
    let endpoint = format!("http://{}", serve.grpc);
    for prompt in PROMPTS {
        claude.run(&bin, &api, Some(("grpc", &endpoint)), prompt);
    }
    let cost: f64 = claude.cost_states().values().sum();
    let c = eventually(Duration::from_secs(15), || {
        check_totals(&serve.report(&["all", "--json"]), api.calls(), PROMPTS.len(), cost)
    });
    c.assert_ok(&format!("telemetry alone, before the import\nserve stderr:\n{}", serve.stderr()));
    let telemetry = serve.report(&["all", "--json"]);
    assert_eq!(
        f(&telemetry["events"]["claude_code.api_request"]),
        api.calls() as f64,
        "telemetry's api_request events, one per answered call: {telemetry:#}"
    );

    let (ok, stdout, stderr) = import(&serve.data_dir, &serve.config, &claude.home);
    assert!(
        ok,
        "tokentray import beside a running serve failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // `import` beside a running engine has the engine import (tests/import_engine.rs); the
    // requests telemetry already counted are recognised by their `requestId`.
    assert!(stdout.contains(" new requests"), "import printed {stdout:?}");
    assert!(stdout.contains("in the engine"), "import printed {stdout:?}");
    eprintln!("import beside the running serve: {}", stdout.trim());

    let after = serve.report(&["all", "--json"]);
    assert_eq!(totals(&after), totals(&telemetry), "the import changed telemetry's totals");
    check_totals(&after, api.calls(), PROMPTS.len(), cost).assert_ok("after the import");
}

/// tokentray starts in the middle: the first session's telemetry went nowhere (no serve), the
/// second's reached `serve`. The engine's own import at start and `tokentray import` afterwards
/// give both sessions once, each request once, Claude Code's whole cost.
#[test]
fn tokentray_started_between_two_sessions_counts_both_once() {
    let Some(bin) = claude_or_skip() else { return };
    let api = StandIn::start(USAGE, REPLY);
    let claude = ClaudeHome::new();
    let nobody = format!("http://127.0.0.1:{}", support::free_port());
    claude.run(&bin, &api, Some(("grpc", &nobody)), PROMPTS[0]);
    let first_calls = api.calls();

    let serve = serve_reading(&claude);
    let endpoint = format!("http://{}", serve.grpc);
    claude.run(&bin, &api, Some(("grpc", &endpoint)), PROMPTS[1]);
    let costs = claude.cost_states();
    assert_eq!(costs.len(), 2, "one cost-state per session: {costs:?}");
    // The second session's telemetry arrived (its requests are the stand-in's later calls).
    let c = eventually(Duration::from_secs(15), || {
        let r = serve.report(&["all", "--json"]);
        let mut c = Checker::new();
        c.num(
            "report events[claude_code.api_request] (second session's telemetry)",
            f(&r["events"]["claude_code.api_request"]),
            (api.calls() - first_calls) as f64,
        );
        c
    });
    c.assert_ok(&format!("second session's telemetry\nserve stderr:\n{}", serve.stderr()));

    let (ok, stdout, stderr) = import(&serve.data_dir, &serve.config, &claude.home);
    assert!(ok, "tokentray import failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    let r = serve.report(&["all", "--json"]);
    let c = check_totals(&r, api.calls(), 2, costs.values().sum());
    if !c.ok() {
        eprintln!("import: {stdout}\nreport: {r:#}\nserve stderr:\n{}", serve.stderr());
    }
    c.assert_ok("first session from transcripts only, second from telemetry and transcripts");
}

/// Telemetry metrics without events (`OTEL_LOGS_EXPORTER` off, as many users have it): the
/// counting rule takes per session, model and token type the larger of the metrics' total and
/// the transcripts'; both are the same requests here, so the import changes no token and no cent,
/// and adds the request count only the transcripts know.
#[test]
fn telemetry_metrics_without_events_then_import_keeps_the_metrics_totals() {
    let Some(bin) = claude_or_skip() else { return };
    let (api, claude, serve) = telemetry_to_serve();
    let endpoint = format!("http://{}", serve.grpc);
    let no_events = [("OTEL_LOGS_EXPORTER", "none")];
    claude.run_with(&bin, &api, Some(("grpc", &endpoint)), PROMPTS[0], &no_events);
    let cost: f64 = claude.cost_states().values().sum();
    let c = eventually(Duration::from_secs(15), || {
        let r = serve.report(&["all", "--json"]);
        let mut c = check_totals(&r, api.calls(), 1, cost);
        // Without events telemetry has no request count: everything else must match already.
        c.errors.retain(|e| !e.starts_with("report api_requests.count"));
        c
    });
    c.assert_ok(&format!("metrics alone\nserve stderr:\n{}", serve.stderr()));
    let metrics_only = serve.report(&["all", "--json"]);
    let events = metrics_only["events"]["claude_code.api_request"].as_f64().unwrap_or(0.0);
    assert_eq!(events, 0.0, "OTEL_LOGS_EXPORTER=none still sent events: {metrics_only:#}");

    let (ok, stdout, stderr) = import(&serve.data_dir, &serve.config, &claude.home);
    assert!(ok, "tokentray import failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    let after = serve.report(&["all", "--json"]);
    assert_eq!(after["tokens"], metrics_only["tokens"], "the import changed the metrics' tokens");
    assert_eq!(after["cost_usd"], metrics_only["cost_usd"], "the import changed the metrics' cost");
    check_totals(&after, api.calls(), 1, cost).assert_ok("metrics, then the import");
}

/// `git ARGS` in `dir` with no user or system configuration; panics unless it succeeds.
fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=tokentray test", "-c", "user.email=test@example.invalid"])
        .args(["-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A git repository at `dir` with one commit on `main`, then `branch` checked out.
fn git_repo(dir: &Path, branch: &str) {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "--quiet"]);
    std::fs::write(dir.join("README.md"), "a test repository\n").unwrap();
    git(dir, &["add", "README.md"]);
    git(dir, &["commit", "--quiet", "-m", "first"]);
    if branch != "main" {
        git(dir, &["checkout", "--quiet", "-b", branch]);
    }
}

/// What one row of `report --by project|branch` must say: the stand-in's calls of its sessions
/// (each answered with [`USAGE`]), its sessions, and Claude Code's own cost of them.
#[derive(Debug, Default)]
struct Row {
    calls: u64,
    sessions: usize,
    cost: f64,
}

/// `report all --by by --json`'s rows against `want`, keyed by (key, detail): exactly these rows,
/// each with the stand-in's exact tokens, its requests, sessions and Claude Code's cost.
fn check_rows(r: &Value, want: &BTreeMap<(String, Option<String>), Row>) -> Checker {
    let mut c = Checker::new();
    let groups = r["groups"].as_array().cloned().unwrap_or_default();
    let got: Vec<(String, Option<String>)> = groups
        .iter()
        .map(|g| {
            (g["key"].as_str().unwrap_or("?").to_string(), g["detail"].as_str().map(str::to_string))
        })
        .collect();
    let wanted: Vec<&(String, Option<String>)> = want.keys().collect();
    c.check(got.len() == want.len() && want.keys().all(|k| got.contains(k)), || {
        format!("rows (key, detail): got {got:?}, want {wanted:?}")
    });
    for (g, id) in groups.iter().zip(&got) {
        let Some(row) = want.get(id) else { continue };
        for (k, per_call) in [
            ("input", USAGE.input),
            ("output", USAGE.output),
            ("cacheRead", USAGE.cache_read),
            ("cacheCreation", USAGE.cache_creation),
        ] {
            c.num(format!("{id:?} tokens.{k}"), f(&g["tokens"][k]), (per_call * row.calls) as f64);
        }
        c.num(
            format!("{id:?} api_requests.count"),
            f(&g["api_requests"]["count"]),
            row.calls as f64,
        );
        c.num(format!("{id:?} sessions"), f(&g["sessions"]), row.sessions as f64);
        c.num(format!("{id:?} cost_usd vs Claude Code's cost-state"), f(&g["cost_usd"]), row.cost);
    }
    c
}

/// Issue 15's projects: telemetry off, one session in a subfolder of git repo A (branch
/// `feature-a`), one in a linked work tree of A (`git worktree add`, branch `hotfix`, in another
/// folder also named `repo-a`), one in repo B (`main`), one in a plain folder C and one in a
/// plain folder D deleted before the import. `report --by project` has one row per work tree
/// (its top-level folder, not the subfolder the CLI ran in; the linked work tree is its own,
/// told apart by its full path) and per plain folder (D named by its last path component);
/// `--by branch` one row per branch; every row has the stand-in's exact tokens. The project is
/// resolved at import: with every folder gone afterwards the rows stay as they were.
#[test]
fn sessions_in_work_trees_and_plain_folders_give_the_project_and_branch_rows() {
    let Some(bin) = claude_or_skip() else { return };
    let api = StandIn::start(USAGE, REPLY);
    let claude = ClaudeHome::new();
    let places = tempdir("tokentray-projects-");
    // The CLI records its working directory as the system resolves it.
    let root = places.path().canonicalize().unwrap();
    let repo_a = root.join("repo-a");
    git_repo(&repo_a, "feature-a");
    let deep = repo_a.join("src/deep");
    std::fs::create_dir_all(&deep).unwrap();
    let linked = root.join("linked/repo-a");
    git(&repo_a, &["worktree", "add", "--quiet", "-b", "hotfix", linked.to_str().unwrap()]);
    let repo_b = root.join("repo-b");
    git_repo(&repo_b, "main");
    let plain = root.join("plain-c");
    let gone = root.join("gone-d");
    // (where the CLI runs, the project's name and path, its branch: None for a plain folder)
    let sessions: [(&Path, &str, &Path, Option<&str>); 5] = [
        (&deep, "repo-a", &repo_a, Some("feature-a")),
        (&linked, "repo-a", &linked, Some("hotfix")),
        (&repo_b, "repo-b", &repo_b, Some("main")),
        (&plain, "plain-c", &plain, None),
        (&gone, "gone-d", &gone, None),
    ];
    let mut calls = BTreeMap::new();
    for (cwd, ..) in sessions {
        std::fs::create_dir_all(cwd).unwrap();
        calls.insert(
            cwd.display().to_string(),
            claude.run_at(&bin, &api, Some(cwd), None, "say hi", &[]),
        );
    }
    std::fs::remove_dir_all(&gone).unwrap();

    // What the CLI wrote: each session's cwd (the subfolder, not A's top level) and branch.
    let recorded = claude.recorded_places();
    let costs = claude.cost_states();
    let mut by_cwd: BTreeMap<String, (String, Option<String>)> = BTreeMap::new();
    for (session, (cwd, branch)) in &recorded {
        assert!(
            by_cwd.insert(cwd.clone(), (session.clone(), branch.clone())).is_none(),
            "two sessions in {cwd}: {recorded:?}"
        );
    }
    let mut by_project: BTreeMap<(String, Option<String>), Row> = BTreeMap::new();
    let mut by_branch: BTreeMap<(String, Option<String>), Row> = BTreeMap::new();
    for (cwd, name, top, branch) in sessions {
        let cwd = cwd.display().to_string();
        let (session, recorded_branch) = by_cwd
            .get(&cwd)
            .unwrap_or_else(|| panic!("no session recorded with cwd {cwd}: {recorded:?}"));
        // A work tree's branch must be its checked-out branch. A plain folder has none (the CLI
        // writes `HEAD` for it, which tokentray does not keep), unless it was gone at import:
        // then nothing says it was no work tree, and what the CLI wrote stays.
        if let Some(branch) = branch {
            assert_eq!(recorded_branch.as_deref(), Some(branch), "the CLI's gitBranch in {cwd}");
        }
        let expected_branch = match branch {
            None if Path::new(&cwd).exists() => String::new(),
            _ => recorded_branch.clone().unwrap_or_default(),
        };
        let cost = *costs.get(session).unwrap_or_else(|| panic!("no cost-state for {session}"));
        for (rows, key) in [
            (&mut by_project, (name.to_string(), Some(top.display().to_string()))),
            (&mut by_branch, (expected_branch.clone(), None)),
        ] {
            let row = rows.entry(key).or_default();
            row.calls += calls[&cwd];
            row.sessions += 1;
            row.cost += cost;
        }
    }

    let dir = tempdir("tokentray-projects-data-");
    let (data_dir, config) = (dir.path().join("data"), dir.path().join("config.toml"));
    std::fs::write(&config, claude.config_toml()).unwrap();
    let (ok, stdout, stderr) = import(&data_dir, &config, &claude.home);
    assert!(ok, "tokentray import failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    let project = support::serve::report(&data_dir, &config, &["all", "--by", "project", "--json"]);
    let branch = support::serve::report(&data_dir, &config, &["all", "--by", "branch", "--json"]);
    let (by_project_ok, by_branch_ok) =
        (check_rows(&project, &by_project), check_rows(&branch, &by_branch));
    if !by_project_ok.ok() || !by_branch_ok.ok() {
        eprintln!(
            "recorded by the CLI: {recorded:?}\nby project: {project:#}\nby branch: {branch:#}"
        );
    }
    by_project_ok.assert_ok("report all --by project");
    by_branch_ok.assert_ok("report all --by branch");
    check_totals(&project, api.calls(), sessions.len(), costs.values().sum()).assert_ok("total");

    // Resolved at import: the work trees and folders gone, the rows are still theirs.
    std::fs::remove_dir_all(&root).unwrap();
    let (ok, stdout, stderr) = import(&data_dir, &config, &claude.home);
    assert!(
        ok && stdout.contains(" 0 new requests"),
        "second import\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let after = support::serve::report(&data_dir, &config, &["all", "--by", "project", "--json"]);
    assert_eq!(after["groups"], project["groups"], "the rows changed once the folders were gone");
}

/// Issue 15's live follow with the real CLI: a session with telemetry off while `serve` runs
/// (on the CLI's own `CLAUDE_CONFIG_DIR`, still without `projects/` when `serve` started)
/// reaches `GET /api/dashboard`: today's tokens are the stand-in's exact usage, its requests
/// counted, and `report today --json` agrees. Nothing but the follower can bring them: the
/// start-up import was done (and found nothing) before the CLI ran, and nothing imports after.
#[test]
fn telemetry_off_session_while_serve_runs_reaches_the_dashboard() {
    let Some(bin) = claude_or_skip() else { return };
    let api = StandIn::start(USAGE, REPLY);
    let claude = ClaudeHome::with_config_dir();
    let serve = Serve::start_with(ServeOptions {
        env: vec![
            ("HOME".into(), claude.home.display().to_string()),
            ("CLAUDE_CONFIG_DIR".into(), claude.config_dir().display().to_string()),
        ],
        ..ServeOptions::default()
    });
    let following = eventually(Duration::from_secs(60), || {
        let mut c = Checker::new();
        c.check(serve.stderr().contains("following the transcripts"), || "not following".into());
        c
    });
    following.assert_ok(&format!("serve never followed the transcripts\n{}", serve.stderr()));
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("http client");
    let url = format!("http://{}/api/dashboard", serve.metrics);
    let dashboard = || -> Value {
        let resp = http.get(&url).send().unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = resp.status();
        let body = resp.text().unwrap_or_default();
        assert!(status.is_success(), "GET {url}: {status}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("dashboard JSON ({e}): {body}"))
    };
    let before = dashboard();
    assert_eq!(before["has_data"], false, "a fresh engine's dashboard: {before:#}");

    let project = claude.home.with_file_name("live-project");
    std::fs::create_dir_all(&project).unwrap();
    let project = project.canonicalize().unwrap();
    let calls = claude.run_at(&bin, &api, Some(&project), None, PROMPTS[0], &[]);
    let costs = claude.cost_states();
    assert_eq!(costs.len(), 1, "one session in {}: {costs:?}", claude.config_dir().display());
    let cost: f64 = costs.values().sum();
    let check_today = |today: &Value, what: &str| {
        let mut c = Checker::new();
        for (k, per_call) in [
            ("input", USAGE.input),
            ("output", USAGE.output),
            ("cacheRead", USAGE.cache_read),
            ("cacheCreation", USAGE.cache_creation),
        ] {
            c.num(format!("{what} tokens.{k}"), f(&today["tokens"][k]), (per_call * calls) as f64);
        }
        c.num(format!("{what} cost_usd vs Claude Code's cost-state"), f(&today["cost_usd"]), cost);
        c
    };
    let mut last = Value::Null;
    let c = eventually(Duration::from_secs(60), || {
        last = dashboard();
        let mut c = check_today(&last["today"], "dashboard today");
        c.num("dashboard today.api_requests", f(&last["today"]["api_requests"]), calls as f64);
        c
    });
    if !c.ok() {
        eprintln!("dashboard: {last:#}\nstand-in log: {:?}", api.log());
    }
    c.assert_ok(&format!("the session never reached the dashboard\n{}", serve.stderr()));
    assert_eq!(last["has_data"], true, "{last:#}");
    // The month by project: the folder the CLI ran in (no work tree), every request from the
    // transcripts, all priced by Claude Code itself.
    let want_project = serde_json::json!([{
        "project": "live-project", "path": project.display().to_string(),
        "tokens": last["today"]["tokens"], "api_requests": calls, "from_transcripts": calls,
    }]);
    let got_project: Vec<Value> = last["projects"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            serde_json::json!({
                "project": p["project"], "path": p["path"], "tokens": p["tokens"],
                "api_requests": p["api_requests"], "from_transcripts": p["from_transcripts"],
            })
        })
        .collect();
    assert_eq!(Value::from(got_project), want_project, "dashboard projects: {last:#}");
    // Compared as text: -0.0 equals 0.0 as a number but is what a reader of the JSON would see.
    let unpriced = last["projects"][0]["unpriced_tokens"].to_string();
    assert_eq!(unpriced, "0.0", "dashboard projects[0].unpriced_tokens");

    let today = serve.report(&["today", "--json"]);
    let mut c = check_today(&today, "report today");
    c.num("report today api_requests.count", f(&today["api_requests"]["count"]), calls as f64);
    c.check(today["tokens"] == last["today"]["tokens"], || {
        format!(
            "report today's tokens {} != the dashboard's {}",
            today["tokens"], last["today"]["tokens"]
        )
    });
    c.assert_ok("report today --json beside the dashboard");
}
