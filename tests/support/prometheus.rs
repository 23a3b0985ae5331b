//! A real Prometheus server (Debian package `prometheus`, installed by `tests/setup.sh`) as a
//! child process: temp config scraping one target every second, temp TSDB, a free loopback port.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// `tool` from PATH (or /usr/bin); panics telling to run setup when it is not installed.
pub fn require_tool(tool: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{tool}` is not installed: run tests/setup.sh (it installs the Debian package `prometheus`)")
        })
}

pub struct Prometheus {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub addr: SocketAddr,
    http: reqwest::blocking::Client,
    /// `https` when started with a certificate.
    scheme: &'static str,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`/metrics`) every second; waits until it is ready.
    pub fn start(target: SocketAddr) -> Prometheus {
        Prometheus::launch(Some(target), None)
    }

    /// Starts Prometheus as a remote-write receiver (`--web.enable-remote-write-receiver`,
    /// `/api/v1/write`), scraping nothing.
    pub fn start_receiver() -> Prometheus {
        Prometheus::launch(None, None)
    }

    /// A remote-write receiver serving HTTPS with the certificate of `ca` (`--web.config.file`).
    pub fn start_receiver_tls(ca: &super::tls::TestCa) -> Prometheus {
        Prometheus::launch(None, Some(ca))
    }

    pub fn remote_write_url(&self) -> String {
        format!("{}://{}/api/v1/write", self.scheme, self.addr)
    }

    fn launch(target: Option<SocketAddr>, tls: Option<&super::tls::TestCa>) -> Prometheus {
        let bin = require_tool("prometheus");
        let dir = super::tempdir("tokentray-prometheus-");
        let config = dir.path().join("prometheus.yml");
        let mut yaml = [
            "global:".to_string(),
            "  scrape_interval: 1s".into(),
            "  scrape_timeout: 900ms".into(),
            "  evaluation_interval: 1s".into(),
        ];
        let yaml = match target {
            Some(target) => [
                yaml.as_slice(),
                &[
                    "scrape_configs:".into(),
                    "  - job_name: tokentray".into(),
                    "    honor_labels: true".into(),
                    "    metrics_path: /metrics".into(),
                    "    static_configs:".into(),
                    format!("      - targets: ['{target}']"),
                ],
            ]
            .concat()
            .join("\n"),
            None => std::mem::take(&mut yaml).join("\n"),
        };
        std::fs::write(&config, yaml + "\n").unwrap();
        let port = super::free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(&bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address={addr}"))
            .args(target.is_none().then_some("--web.enable-remote-write-receiver"))
            .args(tls.map(|ca| {
                let web = dir.path().join("web.yml");
                let yaml = format!(
                    "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
                    ca.server_cert.display(),
                    ca.server_key.display()
                );
                std::fs::write(&web, yaml).expect("write web.yml");
                format!("--web.config.file={}", web.display())
            }))
            .arg("--log.level=warn")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let mut p = Prometheus {
            child: Some(child),
            dir,
            addr,
            http: {
                let mut b = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10));
                if let Some(ca) = tls {
                    let pem = std::fs::read(&ca.ca_pem).expect("read CA");
                    b = b.add_root_certificate(
                        reqwest::Certificate::from_pem(&pem).expect("CA PEM"),
                    );
                }
                b.build().unwrap()
            },
            scheme: if tls.is_some() { "https" } else { "http" },
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = p
                .http
                .get(format!("{}://{addr}/-/ready", p.scheme))
                .send()
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                break;
            }
            if let Some(st) = p.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("prometheus exited ({st}) before it was ready:\n{}", p.log());
            }
            if Instant::now() > deadline {
                panic!("prometheus not ready on {addr} within 30 s:\n{}", p.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Instant query at "now": the result vector as (labels, value); a scalar as one entry
    /// without labels.
    pub fn query(&self, expr: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let url = format!("{}://{}/api/v1/query", self.scheme, self.addr);
        let resp = self
            .http
            .get(&url)
            .query(&[("query", expr)])
            .send()
            .unwrap_or_else(|e| panic!("query {expr}: {e}"));
        let v: Value =
            resp.json().unwrap_or_else(|e| panic!("query {expr}: response not JSON: {e}"));
        assert_eq!(v["status"], "success", "query {expr}: {v}");
        let value = |x: &Value| -> f64 {
            let s = x[1].as_str().unwrap_or("NaN");
            match s {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                _ => s.parse().unwrap_or(f64::NAN),
            }
        };
        match v["data"]["resultType"].as_str() {
            Some("vector") => v["data"]["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    let labels = r["metric"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                                .collect()
                        })
                        .unwrap_or_default();
                    (labels, value(&r["value"]))
                })
                .collect(),
            Some("scalar") => vec![(BTreeMap::new(), value(&v["data"]["result"]))],
            other => panic!("query {expr}: unexpected result type {other:?}: {v}"),
        }
    }

    /// The single value of a query that aggregates to one element (None when empty).
    pub fn query_one(&self, expr: &str) -> Option<f64> {
        let r = self.query(expr);
        assert!(r.len() <= 1, "query {expr}: want at most one element, got {r:?}");
        r.first().map(|(_, v)| *v)
    }

    /// `sum by (label) (...)`-style result keyed by one label's value.
    pub fn query_by(&self, expr: &str, label: &str) -> BTreeMap<String, f64> {
        self.query(expr)
            .into_iter()
            .map(|(l, v)| (l.get(label).cloned().unwrap_or_default(), v))
            .collect()
    }

    /// State of the scrape target(s): health and last error, for failure messages.
    pub fn targets(&self) -> String {
        self.http
            .get(format!("http://{}/api/v1/targets", self.addr))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_else(|e| format!("(targets: {e})"))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `promtool check metrics` on a text-format body: exit 0 and not a word of output.
pub fn promtool_check(body: &str) {
    let promtool = require_tool("promtool");
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && text.trim().is_empty(),
        "promtool check metrics: {} with output:\n{text}\n--- /metrics body ---\n{body}",
        out.status
    );
}
