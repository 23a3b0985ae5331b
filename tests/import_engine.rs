//! `tokentray import` beside a running engine: the data directory has one engine, so the import
//! runs in it (`POST /api/import`) and the command only follows its progress; `report` keeps
//! working beside it. Ground truth: the captured transcripts' expected.json.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use support::serve::{Serve, ServeOptions};

const FIXTURE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/claude-code-transcripts");

fn expected() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(Path::new(FIXTURE).join("expected.json")).expect("read"),
    )
    .expect("json")
}

fn assert_expected(r: &Value) {
    let e = expected();
    for kind in ["input", "output", "cacheRead", "cacheCreation"] {
        assert_eq!(r["tokens"][kind], e["tokens"][kind], "{kind}: {r:#}");
    }
    assert_eq!(r["api_requests"]["count"], e["requests"], "{r:#}");
    assert_eq!(r["sessions"], e["sessions"], "{r:#}");
    let cost = r["cost_usd"].as_f64().expect("cost");
    assert!((cost - e["cost_usd_claude_code"].as_f64().expect("n")).abs() < 1e-9, "{cost}");
}

fn import(data_dir: &Path, config: &Path) -> Output {
    support::serve::command(data_dir, config).arg("import").output().expect("run tokentray import")
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A `serve` whose transcripts directory does not exist yet when it starts: its own start-up
/// import finds nothing and it has no folder to follow, so whatever the transcripts hold later
/// reaches the history only through `tokentray import`.
fn serve_with_transcripts_later(claude_dir: &Path) -> Serve {
    serve_with_transcripts_later_and(claude_dir, "")
}

/// As [`serve_with_transcripts_later`], with more config lines.
fn serve_with_transcripts_later_and(claude_dir: &Path, more_config: &str) -> Serve {
    let serve = Serve::start_with(ServeOptions {
        config_toml: Some(format!(
            "{more_config}\n[transcripts]\npaths = [{:?}]\n",
            claude_dir.display().to_string()
        )),
        ..ServeOptions::default()
    });
    // Its start-up import runs on a thread of its own: files copied before it looked would be
    // its, not the import's under test.
    let c = support::eventually(Duration::from_secs(30), || {
        let mut c = support::Checker::new();
        c.check(serve.stderr().contains("transcripts imported"), || {
            format!("serve did not log its start-up import:\n{}", serve.stderr())
        });
        c
    });
    c.assert_ok("the engine's start-up import");
    serve
}

fn engine_import_status(serve: &Serve) -> Value {
    let resp = reqwest::blocking::get(format!("http://{}/api/import", serve.metrics))
        .expect("GET /api/import");
    assert_eq!(resp.status(), 200);
    resp.json().expect("json")
}

#[test]
fn import_beside_a_running_serve_runs_in_the_engine_and_counts_each_request_once() {
    let claude = support::tempdir("tokentray-claude-");
    let claude_dir: PathBuf = claude.path().join(".claude");
    let serve = serve_with_transcripts_later(&claude_dir);
    let before = serve.report(&["all", "--json"]);
    assert_eq!(before["api_requests"]["count"], 0, "nothing imported yet: {before:#}");

    support::copy_tree(&Path::new(FIXTURE).join("home/.claude"), &claude_dir);
    let out = import(&serve.data_dir, &serve.config);
    assert!(out.status.success(), "{}\nserve:\n{}", text(&out), serve.stderr());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let in_engine = format!("import done in the engine (pid {})", serve.pid());
    assert!(stdout.contains(&in_engine), "{}", text(&out));
    assert!(stdout.contains(" 13 new requests"), "{}", text(&out));
    // The engine's own account: it was the engine that read the files and stored the requests.
    let status = engine_import_status(&serve);
    assert_eq!(status["id"], 1, "{status:#}");
    assert_eq!(status["done"], true, "{status:#}");
    assert_eq!(status["new_requests"], expected()["requests"], "{status:#}");
    assert_eq!(status["pid"], serve.pid(), "{status:#}");

    // `report` is read-only and keeps working beside the engine.
    assert_expected(&serve.report(&["all", "--json"]));

    let again = import(&serve.data_dir, &serve.config);
    assert!(again.status.success(), "{}", text(&again));
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(stdout.contains(&in_engine), "{}", text(&again));
    assert!(stdout.contains(" 0 new requests"), "{}", text(&again));
    assert_eq!(engine_import_status(&serve)["id"], 2);
    assert_expected(&serve.report(&["all", "--json"]));
}

#[test]
fn a_web_page_cannot_start_an_import_in_the_engine() {
    let claude = support::tempdir("tokentray-claude-");
    let claude_dir = claude.path().join(".claude");
    let serve = serve_with_transcripts_later(&claude_dir);
    support::copy_tree(&Path::new(FIXTURE).join("home/.claude"), &claude_dir);
    let client = reqwest::blocking::Client::new();
    let url = format!("http://{}/api/import", serve.metrics);

    let resp = client.post(&url).header("Origin", "http://evil.example").send().expect("POST");
    assert_eq!(resp.status(), 403);
    let body = resp.text().expect("body");
    assert!(body.contains("Origin: http://evil.example"), "{body}");
    // A page whose name was re-pointed at 127.0.0.1 (DNS rebinding) is refused by its Host.
    let resp = client.post(&url).header("Host", "evil.example").send().expect("POST");
    assert_eq!(resp.status(), 403);

    let status = engine_import_status(&serve);
    assert_eq!(status["id"], 0, "no import was started: {status:#}");
    let r = serve.report(&["all", "--json"]);
    assert_eq!(r["api_requests"]["count"], 0, "nothing was imported: {r:#}");
}

/// `[metrics] require_header` guards the metrics listener: `import` reads the same config and
/// carries the token; a request without it is refused.
#[test]
fn import_in_an_engine_that_requires_a_token_carries_it() {
    let claude = support::tempdir("tokentray-claude-");
    let claude_dir = claude.path().join(".claude");
    let token = claude.path().join("scrape-token");
    std::fs::write(&token, "s3cr3t-import\n").expect("token");
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let metrics_auth = format!(
        "[metrics]\nrequire_header = {:?}\n",
        format!("Authorization=@file:{}", token.display())
    );
    let serve = serve_with_transcripts_later_and(&claude_dir, &metrics_auth);
    let url = format!("http://{}/api/import", serve.metrics);
    let refused = reqwest::blocking::Client::new().post(&url).send().expect("POST");
    assert_eq!(refused.status(), 401);

    support::copy_tree(&Path::new(FIXTURE).join("home/.claude"), &claude_dir);
    let out = import(&serve.data_dir, &serve.config);
    assert!(out.status.success(), "{}\nserve:\n{}", text(&out), serve.stderr());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("in the engine (pid {})", serve.pid())), "{}", text(&out));
    assert!(stdout.contains(" 13 new requests"), "{}", text(&out));
    assert!(!text(&out).contains("s3cr3t-import"), "the token was printed: {}", text(&out));
    assert_expected(&serve.report(&["all", "--json"]));
}

/// An engine from before `/api/import` (its metrics listener answers 404 there) holds the data
/// directory: `import` says so and fails instead of writing beside it. The old engine is this
/// test holding the lock as an engine does, with its lock file naming a listener that has no
/// such route.
#[test]
fn an_engine_without_the_import_endpoint_is_named_and_nothing_is_written() {
    let dir = support::tempdir("tokentray-old-engine-");
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let metrics = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for mut conn in listener.incoming().map_while(Result::ok) {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let lock = std::fs::File::create(data_dir.join("engine.lock")).expect("lock file");
    lock.lock().expect("flock");
    let info = serde_json::json!({
        "pid": std::process::id(), "started_at": 0, "metrics": metrics.to_string(),
    });
    std::fs::write(data_dir.join("engine.lock"), info.to_string()).expect("write lock file");

    let out = import(&data_dir, &dir.path().join("no-such-config.toml"));
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("too old"), "{}", text(&out));
    assert!(stderr.contains(&format!("pid {}", std::process::id())), "{}", text(&out));
    assert!(!data_dir.join("tokentray.sqlite3").exists(), "import wrote beside the engine");
    drop(lock);
}
