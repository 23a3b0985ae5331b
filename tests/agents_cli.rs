//! The real Codex CLI (npm `@openai/codex@0.169.0`) and the real Gemini CLI (npm
//! `@google/gemini-cli@0.61.0`), installed by `tests/setup.sh` into `tests/.cache/`, each run
//! offline against a local stand-in of its model API (streaming answers with fixed usage) and
//! exporting to a running `tokentray serve`, over every protocol it supports. Telemetry is
//! configured ONLY by the file `tokentray setup --agent codex|gemini` wrote (the test writes the
//! model-provider part a user has, never an `[otel]` key or a telemetry variable). The stand-in's
//! usage times the calls it answered is the ground truth for tokens; cost is those tokens times
//! the prices written below.
//!
//! The only allowed skip: a CLI binary is missing after setup (npm unreachable).
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use support::{eventually, tempdir, Checker, Serve};

/// USD per million tokens (uncached input, cached input, output), from LiteLLM's
/// `model_prices_and_context_window.json` (BerriAI/litellm at commit 00035b69f416, read
/// 2026-12-02): `gpt-5-codex` input_cost_per_token 1.25e-06, cache_read_input_token_cost
/// 1.25e-07, output_cost_per_token 1e-05; `gemini/gemini-2.5-flash` 3e-07, 3e-08, 2.5e-06
/// (reasoning/thinking tokens are billed as output). Written here, not read from tokentray's
/// table, so a wrong table fails this test.
const GPT_5_CODEX: (f64, f64, f64) = (1.25, 0.125, 10.0);
const GEMINI_2_5_FLASH: (f64, f64, f64) = (0.30, 0.03, 2.50);

const CODEX_VERSION: &str = "0.169.0";
const GEMINI_VERSION: &str = "0.61.0";
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
const SETTLE: Duration = Duration::from_secs(20);
const REPLY: &str = "hi from the stand-in";

/// Usage of every stand-in answer (the captures' figures, `shared/fixtures/*/expected.json`).
/// Codex: `input_tokens` includes the cached ones, `output_tokens` the reasoning ones.
const CODEX_USAGE: CodexUsage = CodexUsage { input: 1500, cached: 1000, output: 60, reasoning: 20 };
/// Gemini: `promptTokenCount` includes the cached ones; thoughts are not in `candidatesTokenCount`.
const GEMINI_USAGE: GeminiUsage =
    GeminiUsage { prompt: 1800, cached: 600, candidates: 40, thoughts: 50 };

#[derive(Clone, Copy)]
struct CodexUsage {
    input: u64,
    cached: u64,
    output: u64,
    reasoning: u64,
}

#[derive(Clone, Copy)]
struct GeminiUsage {
    prompt: u64,
    cached: u64,
    candidates: u64,
    thoughts: u64,
}

// --- the stand-ins --------------------------------------------------------------------------

#[derive(Default)]
struct Shared {
    /// Answers carrying usage.
    calls: AtomicU64,
    /// `METHOD URI -> status` of every request, for failure messages.
    log: Mutex<Vec<String>>,
}

/// One local HTTP server answering as the model API of one CLI.
struct StandIn {
    addr: SocketAddr,
    shared: Arc<Shared>,
    rt: Option<tokio::runtime::Runtime>,
}

impl StandIn {
    fn start(handler: fn(&Shared, &Method, &Uri, &[u8]) -> Response) -> StandIn {
        let shared = Arc::new(Shared::default());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let listener =
            rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind stand-in");
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .fallback(move |State(st): State<Arc<Shared>>, method: Method, uri: Uri, body: Bytes| async move {
                handler(&st, &method, &uri, &body)
            })
            .with_state(shared.clone());
        rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StandIn { addr, shared, rt: Some(rt) }
    }

    fn calls(&self) -> u64 {
        self.shared.calls.load(Ordering::SeqCst)
    }

    fn log(&self) -> Vec<String> {
        self.shared.log.lock().unwrap().clone()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn sse(events: &[(Option<&str>, Value)]) -> Response {
    let mut body = String::new();
    for (name, data) in events {
        if let Some(name) = name {
            body.push_str(&format!("event: {name}\n"));
        }
        body.push_str(&format!("data: {data}\n\n"));
    }
    ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response()
}

fn logged(st: &Shared, method: &Method, uri: &Uri, status: StatusCode, note: &str) {
    st.log.lock().unwrap().push(format!("{method} {uri} {note}-> {}", status.as_u16()));
}

/// The OpenAI Responses API as `codex exec` uses it: `POST /v1/responses` streams one message
/// and `response.completed` with usage; `POST /v1/analytics/codex/turn-costs` gets `{}` (no
/// cost known, so Codex exports none); everything else is 404.
fn openai(st: &Shared, method: &Method, uri: &Uri, _body: &[u8]) -> Response {
    let path = uri.path();
    if method == Method::POST && path.ends_with("/analytics/codex/turn-costs") {
        logged(st, method, uri, StatusCode::OK, "");
        return ([(header::CONTENT_TYPE, "application/json")], "{}").into_response();
    }
    if method != Method::POST || !path.ends_with("/responses") {
        logged(st, method, uri, StatusCode::NOT_FOUND, "");
        return StatusCode::NOT_FOUND.into_response();
    }
    let n = st.calls.fetch_add(1, Ordering::SeqCst) + 1;
    logged(st, method, uri, StatusCode::OK, "");
    let (id, item) = (format!("resp_standin_{n}"), format!("msg_standin_{n}"));
    let u = CODEX_USAGE;
    let message = |content: Value| json!({"type": "message", "role": "assistant", "id": item, "status": "completed", "content": content});
    sse(&[
        (
            Some("response.created"),
            json!({"type": "response.created", "response": {"id": id, "status": "in_progress"}}),
        ),
        (
            Some("response.output_item.added"),
            json!({"type": "response.output_item.added", "output_index": 0, "item": message(json!([]))}),
        ),
        (
            Some("response.output_text.delta"),
            json!({"type": "response.output_text.delta", "item_id": item, "output_index": 0,
                   "content_index": 0, "delta": REPLY}),
        ),
        (
            Some("response.output_item.done"),
            json!({"type": "response.output_item.done", "output_index": 0,
                   "item": message(json!([{"type": "output_text", "text": REPLY, "annotations": []}]))}),
        ),
        (
            Some("response.completed"),
            json!({"type": "response.completed", "response": {"id": id, "status": "completed", "usage": {
                "input_tokens": u.input,
                "input_tokens_details": {"cached_tokens": u.cached},
                "output_tokens": u.output,
                "output_tokens_details": {"reasoning_tokens": u.reasoning},
                "total_tokens": u.input + u.output
            }}}),
        ),
    ])
}

/// The Gemini API (generativelanguage v1beta) as `gemini -p -m MODEL` uses it:
/// `POST /v1beta/models/M:streamGenerateContent?alt=sse` streams one answer with
/// `usageMetadata` (and `generateContent` answers the same as JSON); everything else is 404.
fn gemini(st: &Shared, method: &Method, uri: &Uri, _body: &[u8]) -> Response {
    let path = uri.path();
    let stream = path.ends_with(":streamGenerateContent");
    if method != Method::POST || !(stream || path.ends_with(":generateContent")) {
        logged(st, method, uri, StatusCode::NOT_FOUND, "");
        return StatusCode::NOT_FOUND.into_response();
    }
    st.calls.fetch_add(1, Ordering::SeqCst);
    logged(st, method, uri, StatusCode::OK, "");
    let u = GEMINI_USAGE;
    let model = path.rsplit('/').next().and_then(|m| m.split(':').next()).unwrap_or("gemini");
    let answer = json!({
        "candidates": [{
            "content": {"role": "model", "parts": [{"text": REPLY}]},
            "finishReason": "STOP",
            "index": 0
        }],
        "usageMetadata": {
            "promptTokenCount": u.prompt,
            "candidatesTokenCount": u.candidates,
            "totalTokenCount": u.prompt + u.candidates + u.thoughts,
            "cachedContentTokenCount": u.cached,
            "thoughtsTokenCount": u.thoughts
        },
        "modelVersion": model
    });
    if stream {
        sse(&[(None, answer)])
    } else {
        ([(header::CONTENT_TYPE, "application/json")], answer.to_string()).into_response()
    }
}

// --- running the CLIs -----------------------------------------------------------------------

fn cli_bin(dir: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/.cache")
        .join(dir)
        .join("node_modules/.bin")
        .join(name)
}

/// The CLI, or `None` (with the one allowed skip message) when setup could not install it.
fn cli_or_skip(dir: &str, name: &str, version: &str) -> Option<PathBuf> {
    let bin = cli_bin(dir, name);
    if !bin.exists() {
        println!("skipped: {name} CLI not installed at {} (run tests/setup.sh)", bin.display());
        return None;
    }
    let home = tempdir("tokentray-agent-version-");
    let out = Command::new(&bin).arg("--version").env("HOME", home.path()).output();
    let printed = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    assert!(
        printed.contains(version),
        "{} --version printed {printed:?}, want {version} (re-run tests/setup.sh)",
        bin.display()
    );
    Some(bin)
}

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    fn describe(&self) -> String {
        let tail = |s: &str| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        format!(
            "exit {:?}\nstdout:\n{}\nstderr (last lines):\n{}",
            self.status.code(),
            tail(&self.stdout),
            tail(&self.stderr)
        )
    }
}

/// Runs `bin args` in an empty folder with nothing inherited but PATH and `env`.
fn run(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let dir = tempdir("tokentray-agent-run-");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let (out_file, err_file) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TERM", "dumb")
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .args(args)
        .current_dir(&work)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(std::fs::File::create(&err_file).unwrap());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} {args:?} did not exit within {RUN_TIMEOUT:?}\nstdout:\n{}\nstderr:\n{}",
                bin.display(),
                std::fs::read_to_string(&out_file).unwrap_or_default(),
                std::fs::read_to_string(&err_file).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Run {
        status,
        stdout: std::fs::read_to_string(&out_file).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_file).unwrap_or_default(),
    }
}

/// `tokentray setup --agent AGENT --protocol P` for `home`, pointing at `serve`'s ports.
fn setup_agent(
    serve: &Serve,
    dir: &Path,
    home: &Path,
    agent: &str,
    protocol: &str,
    env: &[(&str, &Path)],
) {
    let config = dir.join("tokentray.toml");
    std::fs::write(
        &config,
        format!("[listen]\notlp_grpc = \"{}\"\notlp_http = \"{}\"\n", serve.grpc, serve.http),
    )
    .unwrap();
    let mut cmd = support::serve::command(&serve.data_dir, &config);
    cmd.env("HOME", home).env_remove("CODEX_HOME");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .args(["setup", "--agent", agent, "--protocol", protocol])
        .output()
        .expect("run tokentray setup");
    assert!(
        out.status.success(),
        "setup --agent {agent} --protocol {protocol} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// --- what report must show ------------------------------------------------------------------

struct Want {
    input: f64,
    cache_read: f64,
    output: f64,
    reasoning: f64,
    total: f64,
    sessions: f64,
    cost_usd: f64,
}

fn priced(
    (input, cached, output): (f64, f64, f64),
    uncached_in: f64,
    cached_in: f64,
    out: f64,
) -> f64 {
    (uncached_in * input + cached_in * cached + out * output) / 1e6
}

fn n(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn check_agent_row(c: &mut Checker, report: &Value, key: &str, want: &Want) {
    let Some(row) = report["groups"].as_array().and_then(|g| g.iter().find(|g| g["key"] == key))
    else {
        c.fail(format!("report --by agent: no {key:?} row in {report}"));
        return;
    };
    let t = &row["tokens"];
    c.num(format!("{key} tokens.input (uncached)"), n(&t["input"]), want.input);
    c.num(format!("{key} tokens.cacheRead"), n(&t["cacheRead"]), want.cache_read);
    c.num(format!("{key} tokens.output"), n(&t["output"]), want.output);
    c.num(
        format!("{key} tokens.reasoning"),
        t["reasoning"].as_f64().unwrap_or(0.0),
        want.reasoning,
    );
    c.num(format!("{key} tokens.total"), n(&t["total"]), want.total);
    c.num(format!("{key} sessions"), n(&row["sessions"]), want.sessions);
    c.num(format!("{key} cost_usd"), n(&row["cost_usd"]), want.cost_usd);
}

// --- Codex ----------------------------------------------------------------------------------

/// The part of `~/.codex/config.toml` a user of a custom provider has: the model and where it
/// is served. No `[otel]`: that is what `setup --agent codex` adds.
fn codex_user_config(api: &StandIn) -> String {
    format!(
        "model = \"gpt-5-codex\"\nmodel_provider = \"standin\"\n\n[model_providers.standin]\nname = \"standin\"\nbase_url = \"http://{}/v1\"\nwire_api = \"responses\"\nenv_key = \"STANDIN_API_KEY\"\n",
        api.addr
    )
}

#[test]
fn real_codex_cli_configured_by_setup_over_grpc_http_binary_and_http_json() {
    let Some(bin) = cli_or_skip("codex", "codex", CODEX_VERSION) else { return };
    let api = StandIn::start(openai);
    let serve = Serve::start();
    let dir = tempdir("tokentray-codex-");
    let home = dir.path().join("home");
    let codex_home = home.join(".codex");
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::write(codex_home.join("config.toml"), codex_user_config(&api)).unwrap();

    let protocols = ["grpc", "http/protobuf", "http/json"];
    for (i, protocol) in protocols.iter().enumerate() {
        setup_agent(&serve, dir.path(), &home, "codex", protocol, &[]);
        let cfg = std::fs::read_to_string(codex_home.join("config.toml")).unwrap();
        assert!(cfg.contains("[model_providers.standin]"), "the user's provider is kept:\n{cfg}");
        let before = api.calls();
        let home_s = home.to_string_lossy().into_owned();
        let run = run(
            &bin,
            &["exec", "--skip-git-repo-check", "say hi"],
            &[("HOME", &home_s), ("STANDIN_API_KEY", "sk-standin")],
        );
        assert!(
            run.status.success() && run.stdout.contains(REPLY),
            "codex exec ({protocol}) failed\n{}\nstand-in log: {:?}\nconfig.toml:\n{cfg}",
            run.describe(),
            api.log()
        );
        assert!(api.calls() > before, "codex exec never called the stand-in: {:?}", api.log());
        let c = eventually(SETTLE, || {
            let mut c = Checker::new();
            let r = serve.report(&["all", "--by", "agent", "--json"]);
            let sessions = r["groups"]
                .as_array()
                .and_then(|g| g.iter().find(|g| g["key"] == "codex"))
                .map_or(0.0, |g| n(&g["sessions"]));
            c.num(format!("codex sessions after the {protocol} run"), sessions, (i + 1) as f64);
            c
        });
        if !c.ok() {
            eprintln!("{}\nserve stderr:\n{}\nconfig.toml:\n{cfg}", run.describe(), serve.stderr());
        }
        c.assert_ok(&format!("codex exec over {protocol}, configured by setup --agent codex"));
    }

    let calls = api.calls() as f64;
    let u = CODEX_USAGE;
    let (uncached, cached, output) =
        ((u.input - u.cached) as f64 * calls, u.cached as f64 * calls, u.output as f64 * calls);
    let want = Want {
        input: uncached,
        cache_read: cached,
        // Reasoning is inside Codex's output: shown beside it, never added again.
        output,
        reasoning: u.reasoning as f64 * calls,
        total: (u.input + u.output) as f64 * calls,
        sessions: protocols.len() as f64,
        cost_usd: priced(GPT_5_CODEX, uncached, cached, output),
    };
    let c = eventually(SETTLE, || {
        let mut c = Checker::new();
        check_agent_row(&mut c, &serve.report(&["all", "--by", "agent", "--json"]), "codex", &want);
        c
    });
    if !c.ok() {
        eprintln!("stand-in log: {:?}\nserve stderr:\n{}", api.log(), serve.stderr());
    }
    c.assert_ok(&format!("real codex CLI, {} runs, {calls} answers", protocols.len()));
}

// --- Gemini CLI -----------------------------------------------------------------------------

#[test]
fn real_gemini_cli_configured_by_setup_over_grpc_and_http() {
    let Some(bin) = cli_or_skip("gemini-cli", "gemini", GEMINI_VERSION) else { return };
    let api = StandIn::start(gemini);
    let serve = Serve::start();
    let dir = tempdir("tokentray-gemini-");
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".gemini")).unwrap();
    // The user's own settings: API-key auth (without it the CLI stops at "Invalid auth method").
    std::fs::write(
        home.join(".gemini/settings.json"),
        "{\n  \"security\": {\n    \"auth\": {\n      \"selectedType\": \"gemini-api-key\"\n    }\n  }\n}\n",
    )
    .unwrap();

    let protocols = ["grpc", "http"];
    for (i, protocol) in protocols.iter().enumerate() {
        setup_agent(&serve, dir.path(), &home, "gemini", protocol, &[]);
        let settings = std::fs::read_to_string(home.join(".gemini/settings.json")).unwrap();
        let before = api.calls();
        let home_s = home.to_string_lossy().into_owned();
        let base = format!("http://{}", api.addr);
        let run = run(
            &bin,
            &["-p", "say hi", "-m", "gemini-2.5-flash"],
            &[
                ("HOME", &home_s),
                ("GEMINI_API_KEY", "standin-key"),
                ("GOOGLE_GEMINI_BASE_URL", &base),
                // Headless runs refuse an untrusted folder otherwise.
                ("GEMINI_CLI_TRUST_WORKSPACE", "true"),
            ],
        );
        assert!(
            run.status.success() && run.stdout.contains(REPLY),
            "gemini -p ({protocol}) failed\n{}\nstand-in log: {:?}\nsettings.json:\n{settings}",
            run.describe(),
            api.log()
        );
        assert!(api.calls() > before, "gemini -p never called the stand-in: {:?}", api.log());
        let c = eventually(SETTLE, || {
            let mut c = Checker::new();
            let r = serve.report(&["all", "--by", "agent", "--json"]);
            let sessions = r["groups"]
                .as_array()
                .and_then(|g| g.iter().find(|g| g["key"] == "gemini-cli"))
                .map_or(0.0, |g| n(&g["sessions"]));
            c.num(
                format!("gemini-cli sessions after the {protocol} run"),
                sessions,
                (i + 1) as f64,
            );
            c
        });
        if !c.ok() {
            eprintln!(
                "{}\nserve stderr:\n{}\nsettings.json:\n{settings}",
                run.describe(),
                serve.stderr()
            );
        }
        c.assert_ok(&format!("gemini -p over {protocol}, configured by setup --agent gemini"));
    }

    let calls = api.calls() as f64;
    let u = GEMINI_USAGE;
    let (uncached, cached) = ((u.prompt - u.cached) as f64 * calls, u.cached as f64 * calls);
    // Thoughts are billed as output and are not in Gemini's candidates count.
    let output = (u.candidates + u.thoughts) as f64 * calls;
    let want = Want {
        input: uncached,
        cache_read: cached,
        output,
        reasoning: u.thoughts as f64 * calls,
        total: (u.prompt + u.candidates + u.thoughts) as f64 * calls,
        sessions: protocols.len() as f64,
        cost_usd: priced(GEMINI_2_5_FLASH, uncached, cached, output),
    };
    let c = eventually(SETTLE, || {
        let mut c = Checker::new();
        check_agent_row(
            &mut c,
            &serve.report(&["all", "--by", "agent", "--json"]),
            "gemini-cli",
            &want,
        );
        c
    });
    if !c.ok() {
        eprintln!("stand-in log: {:?}\nserve stderr:\n{}", api.log(), serve.stderr());
    }
    c.assert_ok(&format!("real gemini CLI, {} runs, {calls} answers", protocols.len()));
}
