//! The dashboard page served by `tokentray serve` at `http://METRICS/`, in a real headless
//! Chromium driven over W3C WebDriver (chromedriver, plain JSON over HTTP):
//!
//! 1. before any data: the empty state shows the Claude Code env block with the OTLP ports
//!    actually bound, and its copy button works;
//! 2. Claude Code-shaped requests (timestamped now) are posted over OTLP/HTTP protobuf, and the
//!    open page updates by itself — no reload — to the figures `tokentray report --json` prints:
//!    spend of today / week / month, the token split, the model rows, the last request line;
//! 3. `serve` still stops promptly on SIGTERM while the page holds its event stream open;
//! 4. once another machine's data arrives (resource `host.name`, as forwarding adds it), the page
//!    shows today per machine, and today's total counts both.
//!
//! Screenshots in light and dark go to `target/screenshots/web-{light,dark}-{empty,data}.png`.
//! Needs `chromium` and `chromium-driver` (Debian), which `tests/setup.sh` installs.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message;
use serde_json::{json, Value};
use support::{approx_eq, Serve};
use tokentray_core::testkit::{self, Usage};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The window's size in the tray app.
const WIDTH: u32 = 420;
const HEIGHT: u32 = 640;
/// How long the page may take to show pushed data (the backstop refresh is 60 s, so passing
/// within this proves the push path).
const UPDATE_TIMEOUT: Duration = Duration::from_secs(20);

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find_chromedriver() -> PathBuf {
    if Path::new(CHROMEDRIVER).exists() {
        return PathBuf::from(CHROMEDRIVER);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("chromedriver");
            if p.exists() {
                return p;
            }
        }
    }
    panic!(
        "chromedriver not found (looked at {CHROMEDRIVER} and on PATH). tests/dashboard_web.rs drives a real \
         Chromium: run tests/setup.sh, or `apt-get install -y --no-install-recommends chromium chromium-driver`"
    );
}

/// A chromedriver process on a free port. Killed on drop.
struct Driver {
    child: Child,
    base: String,
    http: reqwest::blocking::Client,
    _profiles: tempfile::TempDir,
}

impl Driver {
    fn start() -> Driver {
        let exe = find_chromedriver();
        let port = support::free_port();
        let child = Command::new(&exe)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(90))
            .build()
            .expect("http client");
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http,
            _profiles: support::tempdir("tokentray-chromium-"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = driver
                .http
                .get(format!("{}/status", driver.base))
                .send()
                .ok()
                .and_then(|r| r.json::<Value>().ok())
                .map(|v| v["value"]["ready"] == true)
                .unwrap_or(false);
            if ready {
                return driver;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver on port {port} did not become ready within 20 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = resp.status();
        let v: Value = resp
            .json()
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: answer is not JSON: {e}"));
        assert!(status.is_success(), "WebDriver {method} {path}: {status}: {v}");
        v["value"].clone()
    }

    /// A new headless Chromium at the window size, with the OS theme forced `dark` or light.
    fn session(&self, dark: bool) -> Session<'_> {
        self.session_sized(dark, HEIGHT)
    }

    /// As [`Driver::session`], `height` pixels tall (for a screenshot of the whole page).
    fn session_sized(&self, dark: bool, height: u32) -> Session<'_> {
        let profile = self
            ._profiles
            .path()
            .join(format!("profile-{}-{height}", if dark { "dark" } else { "light" }));
        let mut args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--hide-scrollbars".into(),
            format!("--window-size={WIDTH},{height}"),
            format!("--user-data-dir={}", profile.display()),
        ];
        if dark {
            args.push("--force-dark-mode".into());
            args.push("--blink-settings=preferredColorScheme=0".into());
        } else {
            args.push("--blink-settings=preferredColorScheme=1".into());
        }
        // The window's exact viewport (a headless window cannot be made narrower than 500 px).
        let mut options = json!({
            "args": args,
            "mobileEmulation": { "deviceMetrics": { "width": WIDTH, "height": height, "pixelRatio": 1.0, "mobile": false, "touch": false } },
        });
        if Path::new(CHROMIUM).exists() {
            options["binary"] = json!(CHROMIUM);
        }
        let caps = json!({ "capabilities": { "alwaysMatch": { "browserName": "chrome", "goog:chromeOptions": options } } });
        let v = self.call(reqwest::Method::POST, "/session", Some(caps));
        let id =
            v["sessionId"].as_str().unwrap_or_else(|| panic!("no sessionId in {v}")).to_string();
        Session { driver: self, id }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Session<'a> {
    driver: &'a Driver,
    id: String,
}

impl Session<'_> {
    fn post(&self, path: &str, body: Value) -> Value {
        self.driver.call(reqwest::Method::POST, &format!("/session/{}{path}", self.id), Some(body))
    }

    fn get(&self, path: &str) -> Value {
        self.driver.call(reqwest::Method::GET, &format!("/session/{}{path}", self.id), None)
    }

    fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url }));
    }

    /// Runs `body` as a function in the page and returns its result.
    fn js(&self, body: &str) -> Value {
        self.post("/execute/sync", json!({ "script": body, "args": [] }))
    }

    fn find(&self, css: &str) -> Option<String> {
        let v = self.post("/elements", json!({ "using": "css selector", "value": css }));
        v.as_array()
            .and_then(|a| a.first())
            .and_then(|e| e[ELEMENT_KEY].as_str())
            .map(str::to_string)
    }

    fn must_find(&self, css: &str) -> String {
        self.find(css).unwrap_or_else(|| {
            panic!("no element matches {css:?}; page text:\n{}", self.page_text())
        })
    }

    fn text(&self, element: &str) -> String {
        self.get(&format!("/element/{element}/text")).as_str().unwrap_or_default().to_string()
    }

    fn displayed(&self, element: &str) -> bool {
        self.get(&format!("/element/{element}/displayed")).as_bool().unwrap_or(false)
    }

    fn click(&self, element: &str) {
        self.post(&format!("/element/{element}/click"), json!({}));
    }

    fn page_text(&self) -> String {
        self.js("return document.body ? document.body.innerText : ''")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits until `css` matches a displayed element.
    fn wait_displayed(&self, css: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.find(css) {
                if self.displayed(&e) {
                    return e;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{css} not displayed within {timeout:?}; page text:\n{}",
                self.page_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.get("/screenshot");
        let png = base64_decode(b64.as_str().expect("screenshot is a base64 string"));
        assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("create screenshot dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let _ = self.driver.http.delete(format!("{}/session/{}", self.driver.base, self.id)).send();
    }
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let target = if target.is_absolute() {
        target
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(target)
    };
    target.join("screenshots")
}

/// Standard base64 (WebDriver screenshots); no dependency for one decoder.
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter_map(val) {
        acc = (acc << 6) | c;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// The page's state, read in one script (null values while the dashboard is not shown).
const STATE_JS: &str = r#"
const q = (s) => document.querySelector(s);
const v = (s) => { const e = q(s); return e && e.dataset.value !== undefined && e.dataset.value !== '' ? Number(e.dataset.value) : null; };
return {
  viewport: [innerWidth, innerHeight],
  marker: window.__tokentrayMarker || null,
  dark: matchMedia('(prefers-color-scheme: dark)').matches,
  empty_shown: !q('#empty-state').hidden,
  dashboard_shown: !q('#dashboard').hidden,
  error: q('#error').hidden ? null : q('#error').textContent,
  status: q('#status').dataset.state,
  today: v('[data-testid=spend-today]'), week: v('[data-testid=spend-week]'), month: v('[data-testid=spend-month]'),
  today_text: q('[data-testid=spend-today]').textContent,
  input: v('[data-testid=tokens-input]'), output: v('[data-testid=tokens-output]'),
  cacheRead: v('[data-testid=tokens-cacheRead]'), cacheCreation: v('[data-testid=tokens-cacheCreation]'),
  cache_ratio: v('[data-testid=cache-ratio]'),
  models: [...document.querySelectorAll('[data-testid=model-row]')].map((r) => ({ model: r.dataset.model, cost: Number(r.dataset.cost), text: r.innerText })),
  sessions: [...document.querySelectorAll('[data-testid=session-row]')].map((r) => ({ id: r.dataset.session, cost: Number(r.dataset.cost) })),
  daily_bars: document.querySelectorAll('[data-testid=chart-daily] rect.bar').length,
  hourly_bars: document.querySelectorAll('[data-testid=chart-hourly] rect.bar').length,
  last_request: q('[data-testid=last-request]').innerText,
  last_request_state: q('[data-testid=last-request]').dataset.state || null,
};
"#;

/// POSTs a protobuf body to the OTLP/HTTP receiver and expects 200.
fn post_otlp(http: &reqwest::blocking::Client, url: &str, body: Vec<u8>) {
    let resp = http
        .post(url)
        .header("Content-Type", "application/x-protobuf")
        .body(body)
        .send()
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    assert_eq!(resp.status().as_u16(), 200, "POST {url}: {:?}", resp.text());
}

fn get(http: &reqwest::blocking::Client, url: &str) -> (u16, String, String) {
    let resp = http.get(url).send().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, ct, resp.text().unwrap_or_default())
}

#[test]
fn dashboard_page_shows_setup_then_live_data_without_reload() {
    let mut serve = Serve::start();
    let base = format!("http://{}", serve.metrics);
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("http client");

    // The listener serves the page's files and /metrics keeps working beside them.
    let (status, ct, body) = get(&http, &format!("{base}/"));
    assert_eq!((status, ct.as_str()), (200, "text/html; charset=utf-8"), "{body}");
    assert!(body.contains("id=\"empty-state\""), "{body}");
    let (status, ct, _) = get(&http, &format!("{base}/app.js"));
    assert_eq!((status, ct.as_str()), (200, "text/javascript; charset=utf-8"));
    let (status, ct, _) = get(&http, &format!("{base}/style.css"));
    assert_eq!((status, ct.as_str()), (200, "text/css; charset=utf-8"));
    let (status, ct, body) = get(&http, &format!("{base}/api/dashboard"));
    assert_eq!((status, ct.as_str()), (200, "application/json"), "{body}");
    let api: Value = serde_json::from_str(&body).expect("dashboard JSON");
    assert_eq!(api["has_data"], false);
    assert_eq!(api["endpoints"]["otlp_http"], serve.http.to_string());
    let (status, _, _) = get(&http, &format!("{base}/metrics"));
    assert_eq!(status, 200);

    let driver = Driver::start();
    let grpc_endpoint = format!("http://{}", serve.grpc);
    let http_endpoint = format!("http://{}", serve.http);

    // --- Empty state, dark then light ---------------------------------------------------------
    {
        let dark = driver.session(true);
        dark.goto(&format!("{base}/"));
        dark.wait_displayed("[data-testid=empty-state]", Duration::from_secs(20));
        let state = dark.js(STATE_JS);
        assert_eq!(state["dark"], true, "the dark session does not prefer a dark scheme: {state}");
        dark.screenshot("web-dark-empty");
    }
    let page = driver.session(false);
    page.goto(&format!("{base}/"));
    let empty = page.wait_displayed("[data-testid=empty-state]", Duration::from_secs(20));
    assert!(page.text(&empty).contains("Connect Claude Code"));
    let env = page.text(&page.must_find("[data-testid=setup-env]"));
    assert!(env.contains("export CLAUDE_CODE_ENABLE_TELEMETRY=1"), "{env}");
    assert!(
        env.contains(&format!("OTEL_EXPORTER_OTLP_ENDPOINT={grpc_endpoint}")),
        "env block lacks the bound gRPC port {}:\n{env}",
        serve.grpc
    );
    assert!(
        env.contains(&http_endpoint),
        "env block lacks the bound HTTP port {}:\n{env}",
        serve.http
    );
    let state = page.js(STATE_JS);
    assert_eq!(state["dark"], false, "{state}");
    assert_eq!(state["viewport"], json!([WIDTH, HEIGHT]), "{state}");
    assert_eq!(state["dashboard_shown"], false, "{state}");
    assert_eq!(state["error"], Value::Null, "{state}");
    page.screenshot("web-light-empty");

    let copy = page.must_find("[data-testid=copy-env]");
    assert!(page.displayed(&copy));
    page.click(&copy);
    let deadline = Instant::now() + Duration::from_secs(5);
    let copied = loop {
        let t = page.text(&copy);
        if t != "Copy" || Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(copied, "Copied", "the copy button (clipboard API or its fallback) did not copy");

    // The event stream must be connected before data arrives, or the update would come from a
    // reconnect rather than the push.
    let deadline = Instant::now() + Duration::from_secs(20);
    while page.js(STATE_JS)["status"] != "live" {
        assert!(
            Instant::now() < deadline,
            "the page never connected to /api/events: {}",
            page.js(STATE_JS)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    page.js("window.__tokentrayMarker = 'same page'; return null;");

    // --- Data over OTLP/HTTP protobuf, timestamped now ----------------------------------------
    let now = tokentray_core::ingest::now_ns() as u64;
    let s = 1_000_000_000u64;
    let opus = Usage {
        cost_usd: 0.4213,
        input: 2100.0,
        output: 812.0,
        cache_read: 90000.0,
        cache_creation: 1500.0,
    };
    let sonnet = Usage {
        cost_usd: 0.0871,
        input: 300.0,
        output: 95.0,
        cache_read: 12000.0,
        cache_creation: 0.0,
    };
    let (t1, t2) = (now - 30 * s, now - 2 * s);
    let mut metrics = testkit::usage_metrics(
        "web-session-1",
        "user",
        testkit::MODEL,
        opus,
        t1 - 60 * s,
        t1,
        false,
    );
    metrics.push(testkit::session_start_metric("web-session-1", "user", t1 - 60 * s, t1));
    metrics.extend(testkit::usage_metrics(
        "web-session-2",
        "user",
        "claude-sonnet-5",
        sonnet,
        t2 - 10 * s,
        t2,
        false,
    ));
    metrics.push(testkit::session_start_metric("web-session-2", "user", t2 - 10 * s, t2));
    let logs = testkit::logs_request(vec![
        testkit::api_request_record("web-session-1", "user", testkit::MODEL, opus, t1),
        testkit::api_request_record("web-session-2", "user", "claude-sonnet-5", sonnet, t2),
    ]);
    post_otlp(
        &http,
        &format!("http://{}/v1/metrics", serve.http),
        testkit::metrics_request(metrics).encode_to_vec(),
    );
    post_otlp(&http, &format!("http://{}/v1/logs", serve.http), logs.encode_to_vec());

    // --- The open page updates by itself to what `tokentray report` says ----------------------
    page.wait_displayed("[data-testid=dashboard]", UPDATE_TIMEOUT);
    let today = serve.report(&["today", "--json"]);
    let week = serve.report(&["week", "--json"]);
    let month = serve.report(&["month", "--json"]);
    let want_today = today["cost_usd"].as_f64().expect("report cost");
    assert!(approx_eq(want_today, 0.4213 + 0.0871), "report today: {today}");
    let deadline = Instant::now() + UPDATE_TIMEOUT;
    let state = loop {
        let st = page.js(STATE_JS);
        let settled = st["today"].as_f64().is_some_and(|v| approx_eq(v, want_today))
            && st["models"].as_array().is_some_and(|m| m.len() == 2)
            && st["last_request_state"] == "request";
        if settled || Instant::now() > deadline {
            break st;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut c = support::Checker::new();
    c.check(state["marker"] == "same page", || format!("the page was reloaded: {state}"));
    c.check(state["error"].is_null(), || format!("error shown: {state}"));
    c.num("today", state["today"].as_f64().unwrap_or(f64::NAN), want_today);
    c.num(
        "week",
        state["week"].as_f64().unwrap_or(f64::NAN),
        week["cost_usd"].as_f64().unwrap_or(f64::NAN),
    );
    c.num(
        "month",
        state["month"].as_f64().unwrap_or(f64::NAN),
        month["cost_usd"].as_f64().unwrap_or(f64::NAN),
    );
    for k in ["input", "output", "cacheRead", "cacheCreation"] {
        c.num(
            format!("tokens.{k}"),
            state[k].as_f64().unwrap_or(f64::NAN),
            today["tokens"][k].as_f64().unwrap_or(f64::NAN),
        );
    }
    c.num("tokens.input value", state["input"].as_f64().unwrap_or(f64::NAN), 2400.0);
    let prompt = 2400.0 + 102000.0 + 1500.0;
    c.num("cache ratio", state["cache_ratio"].as_f64().unwrap_or(f64::NAN), 102000.0 / prompt);
    c.check(
        state["today_text"].as_str().is_some_and(|t| t.contains('$') && t.contains("0.51")),
        || format!("today's spend is not formatted as USD: {state}"),
    );
    let models = state["models"].as_array().cloned().unwrap_or_default();
    c.check(
        models.first().is_some_and(|m| {
            m["model"] == testkit::MODEL && approx_eq(m["cost"].as_f64().unwrap_or(0.0), 0.4213)
        }),
        || format!("first model row: {models:?}"),
    );
    c.check(models.get(1).is_some_and(|m| m["model"] == "claude-sonnet-5"), || {
        format!("second model row: {models:?}")
    });
    c.check(page.find(&format!("[data-model=\"{}\"]", testkit::MODEL)).is_some(), || {
        "no [data-model] row for opus".into()
    });
    let sessions = state["sessions"].as_array().cloned().unwrap_or_default();
    let ids: Vec<&str> = sessions.iter().filter_map(|s| s["id"].as_str()).collect();
    c.check(ids == ["web-session-2", "web-session-1"], || {
        format!("session rows (newest first): {sessions:?}")
    });
    c.check(state["daily_bars"] == 30 && state["hourly_bars"] == 24, || {
        format!("chart bars: {state}")
    });
    let line = state["last_request"].as_str().unwrap_or_default();
    c.check(
        line.contains("claude-sonnet-5")
            && line.contains("$0.09")
            && (line.contains("ago") || line.contains("now")),
        || format!("last request line: {line:?}"),
    );
    c.assert_ok("dashboard after posting data");

    // The dashboard JSON agrees with the page.
    let (_, _, body) = get(&http, &format!("{base}/api/dashboard"));
    let api: Value = serde_json::from_str(&body).expect("dashboard JSON");
    assert_eq!(api["has_data"], true);
    assert_eq!(api["last_request"]["model"], "claude-sonnet-5");

    // The page's Activity list, over HTTP like the rest of the read-only page: newest first, and
    // filtered by session.
    let deadline = Instant::now() + UPDATE_TIMEOUT;
    let activity = loop {
        let a = page.js("return Array.from(document.querySelectorAll('[data-testid=activity-row]')).map((r) => r.dataset.session);");
        if a.as_array().is_some_and(|a| a.len() == 2) || Instant::now() > deadline {
            break a;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(activity, serde_json::json!(["web-session-2", "web-session-1"]), "activity rows");
    let (status, _, body) =
        get(&http, &format!("{base}/api/activity?session=web-session-1&kind=api_request"));
    assert_eq!(status, 200, "{body}");
    let rows: Value = serde_json::from_str(&body).expect("activity JSON");
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    assert_eq!(rows[0]["model"], testkit::MODEL);
    assert_eq!(rows[0]["kind"], "api_request");

    // DNS rebinding: a page served under another name that resolves to 127.0.0.1 is refused.
    let rebound = http
        .get(format!("{base}/api/dashboard"))
        .header("host", format!("evil.example:{}", serve.metrics.port()))
        .send()
        .expect("GET with a foreign Host");
    assert_eq!(rebound.status().as_u16(), 403, "a foreign Host header must be refused");
    let by_name = http
        .get(format!("{base}/api/dashboard"))
        .header("host", format!("localhost:{}", serve.metrics.port()))
        .send()
        .expect("GET as localhost");
    assert_eq!(by_name.status().as_u16(), 200);

    page.screenshot("web-light-data");
    {
        let dark = driver.session(true);
        dark.goto(&format!("{base}/"));
        dark.wait_displayed("[data-testid=dashboard]", Duration::from_secs(20));
        let deadline = Instant::now() + Duration::from_secs(10);
        while dark.js(STATE_JS)["models"].as_array().map_or(0, |m| m.len()) < 2
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(dark.js(STATE_JS)["dark"], true);
        dark.screenshot("web-dark-data");
    }
    {
        // The whole page at the window's width, for the README.
        let tall = driver.session_sized(false, 1280);
        tall.goto(&format!("{base}/"));
        tall.wait_displayed("[data-testid=dashboard]", Duration::from_secs(20));
        let deadline = Instant::now() + Duration::from_secs(10);
        while tall.js(STATE_JS)["sessions"].as_array().map_or(0, |m| m.len()) < 2
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        tall.screenshot("web-light-data-full");
    }

    // SIGTERM while the page still holds /api/events open: serve must not wait for the stream.
    let t0 = Instant::now();
    serve.stop();
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "serve took {:?} to stop with an open event stream",
        t0.elapsed()
    );
    drop(page);
}

#[test]
fn page_shows_today_per_machine_once_another_machine_forwarded_here() {
    let serve = Serve::start();
    let base = format!("http://{}", serve.metrics);
    let http = reqwest::blocking::Client::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    let request = |session: &str, usage: Usage, identity: &[(&str, &str)]| {
        let mut req = testkit::metrics_request(testkit::usage_metrics(
            session,
            "u",
            "claude-opus-4-5",
            usage,
            now - 1_000_000_000,
            now,
            false,
        ));
        // What a forwarding tokentray adds to the resource (tokentray_core::forward::identity).
        if let Some(resource) = req.resource_metrics[0].resource.as_mut() {
            for (k, v) in identity {
                resource.attributes.push(testkit::kv(k, v));
            }
        }
        req.encode_to_vec()
    };
    let url = format!("http://{}/v1/metrics", serve.http);
    post_otlp(&http, &url, request("here", Usage::TYPICAL, &[]));
    let driver = Driver::start();
    let page = driver.session(false);
    page.goto(&format!("{base}/"));
    page.wait_displayed("[data-testid=spend-today]", Duration::from_secs(20));
    let card = page.must_find("[data-testid=machines]");
    assert!(!page.displayed(&card), "one machine only: no split shown");

    let remote = Usage { cost_usd: 2.0 * Usage::TYPICAL.cost_usd, ..Usage::TYPICAL };
    post_otlp(
        &http,
        &url,
        request("there", remote, &[("host.name", "devbox"), ("developer", "ana")]),
    );
    page.wait_displayed("[data-testid=machines]", UPDATE_TIMEOUT);
    let rows = page.js(
        "return [...document.querySelectorAll('[data-testid=machine-row]')].map((r) => ({ machine: r.dataset.machine, cost: Number(r.dataset.cost), text: r.innerText }))",
    );
    let rows = rows.as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows[0]["text"].as_str().is_some_and(|t| t.contains("(this machine)")), "{rows:?}");
    assert!(approx_eq(rows[0]["cost"].as_f64().unwrap_or(f64::NAN), Usage::TYPICAL.cost_usd));
    assert_eq!(rows[1]["machine"], "devbox");
    assert!(rows[1]["text"].as_str().is_some_and(|t| t.contains("ana")), "{rows:?}");
    assert!(approx_eq(rows[1]["cost"].as_f64().unwrap_or(f64::NAN), remote.cost_usd));
    let today = page.js(STATE_JS)["today"].as_f64().unwrap_or(f64::NAN);
    assert!(approx_eq(today, 3.0 * Usage::TYPICAL.cost_usd), "today {today} counts both machines");
}
