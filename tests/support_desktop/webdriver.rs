//! A WebDriver client over plain HTTP for WebKitWebDriver, which launches the app itself
//! (`webkitgtk:browserOptions`) and drives its webview. Tauri allows automation only with
//! `TAURI_WEBVIEW_AUTOMATION=true`. The app inherits the driver's stdout and stderr, so its
//! `listening …` line and logs are read from the driver's [`Output`].

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use super::app::Output;
use super::proc;

pub struct Driver {
    child: Option<Child>,
    pub pid: u32,
    base: String,
    pub out: Output,
    http: reqwest::blocking::Client,
}

impl Driver {
    /// Starts `WebKitWebDriver` on a free port with `env` added for the app it will launch.
    pub fn start(env: &[(&str, &str)]) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let mut cmd = Command::new("WebKitWebDriver");
        cmd.arg(format!("--port={port}"))
            .env("TAURI_WEBVIEW_AUTOMATION", "true")
            .env("TOKENTRAY_LOG", "info");
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("TOKENTRAY_") {
                cmd.env_remove(&k);
            }
        }
        cmd.env("TOKENTRAY_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("start WebKitWebDriver: {e}; install it with tests/setup-desktop.sh")
            });
        let out = Output::default();
        out.attach(&mut child);
        let pid = child.id();
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        let base = format!("http://127.0.0.1:{port}");
        let up = super::wait_for(Duration::from_secs(15), || {
            http.get(format!("{base}/status")).send().ok().filter(|r| r.status().is_success())
        });
        assert!(up.is_some(), "WebKitWebDriver did not answer /status:\n{}", out.text());
        Driver { child: Some(child), pid, base, out, http }
    }

    /// Launches `binary args…` and attaches to its webview.
    pub fn session(&self, binary: &str, args: &[String]) -> Session {
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "webkitgtk:browserOptions": { "binary": binary, "args": args }
                }
            }
        });
        let resp = self
            .http
            .post(format!("{}/session", self.base))
            .json(&caps)
            .send()
            .unwrap_or_else(|e| panic!("new session: {e}\n{}", self.out.text()));
        let v: Value = resp.json().expect("session JSON");
        let id = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}\n{}", self.out.text()))
            .to_string();
        Session { base: format!("{}/session/{id}", self.base), http: self.http.clone() }
    }

    /// The launched app's pid (the tray process, the driver's direct child).
    pub fn app_pid(&self) -> Option<u32> {
        proc::children(self.pid)
            .into_iter()
            .find(|(_, name)| name.starts_with("tokentray"))
            .map(|(p, _)| p)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let kids = proc::descendants(self.pid);
            let _ = child.kill();
            let _ = child.wait();
            for (pid, _) in kids {
                proc::signal(pid, "KILL");
            }
        }
    }
}

pub struct Session {
    base: String,
    http: reqwest::blocking::Client,
}

impl Session {
    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().map_err(|e| format!("{path}: {e}"))?;
        let status = resp.status();
        let v: Value = resp.json().map_err(|e| format!("{path}: {e}"))?;
        if !status.is_success() {
            return Err(format!("{path}: {status} {}", v["value"]));
        }
        Ok(v["value"].clone())
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub fn execute(&self, script: &str, args: Value) -> Result<Value, String> {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// The element matching a CSS selector (W3C "Find Element"); its WebDriver reference.
    pub fn find(&self, css: &str) -> Result<String, String> {
        let v = self.call(
            reqwest::Method::POST,
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        )?;
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("{css}: no element reference in {v}"))
    }

    /// Clears an input as a user would (W3C "Element Clear").
    pub fn clear(&self, element: &str) -> Result<(), String> {
        self.call(reqwest::Method::POST, &format!("/element/{element}/clear"), Some(json!({})))
            .map(|_| ())
    }

    /// Types into an element (W3C "Element Send Keys": real key events).
    pub fn type_text(&self, element: &str, text: &str) -> Result<(), String> {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .map(|_| ())
    }

    /// Clicks an element (W3C "Element Click": the pointer, at its centre).
    pub fn click(&self, element: &str) -> Result<(), String> {
        self.call(reqwest::Method::POST, &format!("/element/{element}/click"), Some(json!({})))
            .map(|_| ())
    }

    /// Resizes the window (W3C "Set Window Rect"), as a user dragging its edge would.
    pub fn set_window_size(&self, width: u32, height: u32) -> Result<(), String> {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .map(|_| ())
    }

    /// The window content as PNG.
    pub fn screenshot(&self) -> Vec<u8> {
        let v = self
            .call(reqwest::Method::GET, "/screenshot", None)
            .unwrap_or_else(|e| panic!("screenshot: {e}"));
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("screenshot base64")
    }

    pub fn end(&self) {
        let _ = self.http.delete(&self.base).send();
    }
}
