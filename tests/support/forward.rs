//! Forwarding tests' shared parts: a team receiver (`serve --require-header`), a local `serve`
//! that forwards to it, the status as JSON, and comparing two `/metrics`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::fixtures::load_set_by_name;
use super::prom;
use super::serve::ServeOptions;
use super::{eventually, Checker, Replayer, Serve};

pub const TOKEN: &str = "Bearer team-s3cr3t-7f3a";
/// Long enough for a queue of fixtures plus a retry or two.
pub const DELIVERY: Duration = Duration::from_secs(60);

/// The team's receiver: `serve --require-header Authorization=@file:…` (the token in a file).
pub fn team_collector(grpc: &str, http: &str, env: &[(&str, &str)]) -> (Serve, tempfile::TempDir) {
    let dir = super::tempdir("tokentray-team-secret-");
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).expect("write token file");
    // Only the owner may read it: `serve` refuses a token file others can read.
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod 600 the token file");
    let team = Serve::start_with(ServeOptions {
        args: vec!["--require-header".into(), format!("Authorization=@file:{}", token.display())],
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        otlp_grpc: grpc.into(),
        otlp_http: http.into(),
        ..ServeOptions::default()
    });
    (team, dir)
}

/// A local `serve` forwarding to `endpoint` with the headers in a file, turned on.
pub fn local_forwarding(
    endpoint: &str,
    protocol: &str,
    headers: &str,
) -> (Serve, tempfile::TempDir) {
    let dir = super::tempdir("tokentray-local-headers-");
    let headers_file = dir.path().join("headers");
    std::fs::write(&headers_file, headers).expect("write headers file");
    (Serve::start_with(forwarding_options(endpoint, protocol, Some(&headers_file))), dir)
}

/// Options of a local `serve` forwarding to `endpoint`, on from its start (so its first
/// request is forwarded too), retrying fast; headers from `headers_file`, else the keychain.
pub fn forwarding_options(
    endpoint: &str,
    protocol: &str,
    headers_file: Option<&std::path::Path>,
) -> ServeOptions {
    let headers =
        headers_file.map(|p| format!("headers_file = \"{}\"\n", p.display())).unwrap_or_default();
    let config = format!(
        "[forward]\nendpoint = \"{endpoint}\"\nprotocol = \"{protocol}\"\n{headers}retry_initial_ms = 100\nretry_max_seconds = 1\n[forward.resource_attributes]\n\"team.id\" = \"payments\"\n"
    );
    let before_start = vec![vec!["forward".to_string(), "on".to_string()]];
    ServeOptions { config_toml: Some(config), before_start, ..ServeOptions::default() }
}

pub fn status(serve: &Serve) -> Value {
    serde_json::from_str(&serve.cli(&["forward", "status", "--json"]))
        .expect("forward status --json")
}

/// Waits until nothing is waiting and something was delivered.
pub fn wait_delivered(local: &Serve) -> Value {
    let mut last = Value::Null;
    let c = eventually(DELIVERY, || {
        last = status(local);
        let mut c = Checker::new();
        c.check(
            last["queue"]["requests"] == 0
                && last["queue"]["changed_series"] == 0
                && last["delivered"].as_u64() > Some(0),
            || format!("still waiting: {last}"),
        );
        c
    });
    c.assert_ok(&format!("forwarding did not finish\n{}", local.stderr()));
    last
}

pub fn replay(local: &Serve, sets: &[&str]) {
    let mut r = Replayer::for_serve(local);
    for name in sets {
        let set = load_set_by_name(name);
        r.send_all(&set.requests);
    }
}

/// Every sample but `target_info`, keyed by name and labels.
pub fn samples(body: &str) -> BTreeMap<String, f64> {
    prom::parse(body)
        .into_iter()
        .filter(|s| s.name != "target_info")
        .map(|s| (format!("{}{:?}", s.name, s.labels), s.value))
        .collect()
}

pub fn assert_same_series(
    local: &BTreeMap<String, f64>,
    team: &BTreeMap<String, f64>,
    context: &str,
) {
    let mut c = Checker::new();
    for (k, v) in local {
        match team.get(k) {
            Some(t) => c.num(k, *t, *v),
            None => c.fail(format!("the team has no {k}")),
        }
    }
    for k in team.keys().filter(|k| !local.contains_key(*k)) {
        c.fail(format!("the team has {k}, which is not local"));
    }
    c.assert_ok(context);
}
