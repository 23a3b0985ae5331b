//! `tokentray doctor`: checks, in order, what stands between Claude Code and a number in the
//! tray, and says for each what is wrong and how to fix it. Exit code 0 when nothing failed,
//! else the most fundamental failure's (`tokentray_core::doctor::Problem`): 10 a port is taken
//! by another program, 11 the engine is not running, 12 Claude Code's settings do not point
//! here, 13 no data received yet, 14 the database is damaged, 15 the data directory cannot be
//! used (a file, missing, unreadable: never damage, so never a reason for `tokentray repair`).
//! The engine is found by its ports and, on other ports, through the data directory's
//! `engine.lock`.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;
use tokentray_core::config::Config;
use tokentray_core::dashboard::endpoints::{self, Endpoints};
use tokentray_core::doctor::{self, Check, Problem, Status};
use tokentray_core::setup;
use tokentray_core::store::{running_engine, Reader, DB_FILE};

mod data_dir;

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Print the checks as JSON ({checks: [{name, status, detail, fix}], exit_code})
    #[arg(long)]
    pub json: bool,
}

pub fn run(config: &Config, args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let listen = &config.listen;
    let configured = Endpoints::from_listen(listen);
    let data_dir = config.data_dir()?;
    let mut checks = Vec::new();

    // 1. The engine, 2. the ports: ours, someone else's, or free.
    let engine = running_engine(&data_dir);
    let (health, engine_check) = engine_check(&configured, engine.as_ref());
    checks.push(engine_check);
    for (what, addr, flag) in [
        ("OTLP/gRPC", &listen.otlp_grpc, "--otlp-grpc / [listen] otlp_grpc"),
        ("OTLP/HTTP", &listen.otlp_http, "--otlp-http / [listen] otlp_http"),
        ("metrics", &listen.metrics, "--metrics / [listen] metrics"),
    ] {
        checks.push(port_check(what, addr, flag, health.as_ref()));
    }

    // 3. Claude Code's settings, 4. the shell's environment.
    let settings = read_claude_settings();
    checks.push(claude_settings_check(&settings, config, engine.as_ref()));
    checks.push(shell_check(&settings));

    // 5. The data directory itself, 6. data, 7. forwarding, 8. the database.
    let dir_check = data_dir::check(&data_dir, config.data_dir.is_some());
    let dir_usable = !matches!(dir_check.status, Status::Fail(_));
    checks.push(dir_check);
    let db = data_dir.join(DB_FILE);
    let reader = if dir_usable && db.exists() { Some(Reader::open(&data_dir)) } else { None };
    let now_ns = tokentray_core::ingest::now_ns();
    checks.push(data_check(reader.as_ref(), &data_dir, now_ns));
    checks.push(forwarding(config, &db, reader.is_some(), now_ns));
    checks.push(database_check(reader.as_ref(), &db));
    // 9. The two sources of the same requests: telemetry and the transcripts. 10. Attributes
    // /metrics does not show.
    if let Some(Ok(r)) = &reader {
        checks.extend(transcript_checks(r, config));
        checks.extend(dropped_labels_check(r));
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&data_dir::as_json(&checks))?);
    } else {
        print(&checks);
    }
    Ok(ExitCode::from(doctor::exit_code(&checks)))
}

/// Whoever answers /api/health on the metrics port, else the engine that holds this data
/// directory (its lock file names the ports it bound).
fn engine_check(
    configured: &Endpoints,
    engine: Option<&tokentray_core::store::EngineInfo>,
) -> (Option<Health>, Check) {
    let (health, at) = match probe_health(&configured.metrics) {
        Some(h) => (Some(h), configured.metrics.clone()),
        None => match engine.and_then(|e| e.metrics.clone()) {
            Some(m) => (probe_health(&m), m),
            None => (None, configured.metrics.clone()),
        },
    };
    let check = match (&health, engine) {
        (Some(h), _) => Check {
            name: "engine",
            status: Status::Ok,
            detail: format!("tokentray {} is running (pid {}), dashboard at http://{at}/", h.version, h.pid),
            fix: None,
        },
        (None, Some(e)) => Check {
            name: "engine",
            status: Status::Ok,
            detail: format!("tokentray is running with this history ({e})"),
            fix: None,
        },
        (None, None) => Check {
            name: "engine",
            status: Status::Fail(Problem::EngineDown),
            detail: format!("no tokentray answers at {}", configured.metrics),
            fix: Some("start the tray app (`tokentray`) or the headless engine (`tokentray serve`); `tokentray tray --help` for options".into()),
        },
    };
    (health, check)
}

/// Claude Code's user settings file and its JSON (`None`: no such file), or why it cannot be
/// read.
type ClaudeSettings = Result<(std::path::PathBuf, Option<Value>), String>;

fn read_claude_settings() -> ClaudeSettings {
    setup::user_settings_path().map_err(|e| e.to_string()).and_then(|path| {
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str::<Value>(&text)
                .map(|v| (path.clone(), Some(v)))
                .map_err(|e| format!("{} is not valid JSON ({e})", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((path, None)),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    })
}

fn claude_settings_check(
    settings: &ClaudeSettings,
    config: &Config,
    engine: Option<&tokentray_core::store::EngineInfo>,
) -> Check {
    let listen = &config.listen;
    // Claude Code must point at the running engine's ports when it runs on others.
    let bound =
        |a: Option<&String>, configured: &str| port_of(a.map_or(configured, |s| s.as_str()));
    let (grpc_port, http_port) = (
        bound(engine.and_then(|e| e.otlp_grpc.as_ref()), &listen.otlp_grpc),
        bound(engine.and_then(|e| e.otlp_http.as_ref()), &listen.otlp_http),
    );
    match settings {
        Ok((path, Some(v))) => match doctor::claude_settings_point_here(v, grpc_port, http_port) {
            Ok(how) => Check {
                name: "Claude Code settings",
                status: Status::Ok,
                detail: format!("{}: telemetry on, {how}", path.display()),
                fix: None,
            },
            Err(why) => Check {
                name: "Claude Code settings",
                status: Status::Fail(Problem::ClaudeSettings),
                detail: format!("{}: {why}", path.display()),
                fix: Some("run `tokentray setup` (add `--protocol http/protobuf` for HTTP)".into()),
            },
        },
        Ok((path, None)) => Check {
            name: "Claude Code settings",
            status: Status::Fail(Problem::ClaudeSettings),
            detail: format!(
                "{} does not exist: Claude Code is not set up to send telemetry here",
                path.display()
            ),
            fix: Some("run `tokentray setup`".into()),
        },
        Err(why) => Check {
            name: "Claude Code settings",
            status: Status::Fail(Problem::ClaudeSettings),
            detail: why.clone(),
            fix: Some("fix the file, then run `tokentray setup`".into()),
        },
    }
}

fn shell_check(settings: &ClaudeSettings) -> Check {
    let shell: Vec<(String, String)> = std::env::vars().collect();
    let empty = Value::Null;
    let settings_value = settings.as_ref().ok().and_then(|(_, v)| v.as_ref()).unwrap_or(&empty);
    let overrides = doctor::shell_overrides(settings_value, &shell);
    if overrides.is_empty() {
        Check {
            name: "shell environment",
            status: Status::Ok,
            detail: "no telemetry variable set in this shell that differs from the settings".into(),
            fix: None,
        }
    } else {
        let list: Vec<String> = overrides
            .iter()
            .map(|(k, v, s)| format!("{k}={v} (settings: {})", s.as_deref().unwrap_or("unset")))
            .collect();
        Check {
            name: "shell environment",
            status: Status::Warn,
            detail: format!("this shell sets {}", list.join(", ")),
            fix: Some(format!("Claude Code started from this shell may send elsewhere: remove them from your shell profile (`unset {}`)", overrides.iter().map(|o| o.0.as_str()).collect::<Vec<_>>().join(" "))),
        }
    }
}

type OpenedReader = Result<Reader, tokentray_core::store::StoreError>;

fn data_check(reader: Option<&OpenedReader>, data_dir: &std::path::Path, now_ns: i64) -> Check {
    let Some(Ok(r)) = reader else { return no_data(data_dir) };
    let Some(at) = r.meta("last_ingest_ns").ok().flatten().and_then(|v| v.parse::<i64>().ok())
    else {
        return no_data(data_dir);
    };
    let client = r.meta("last_client").ok().flatten().unwrap_or_else(|| "an unnamed client".into());
    Check {
        name: "data",
        status: Status::Ok,
        detail: format!("last received {} ago, from {client}", ago(now_ns.saturating_sub(at))),
        fix: None,
    }
}

fn database_check(reader: Option<&OpenedReader>, db: &std::path::Path) -> Check {
    let damaged = |why: String| data_dir::database_problem(db, why);
    match reader {
        None => Check {
            name: "database",
            status: Status::Info,
            detail: format!("no history yet at {}", db.display()),
            fix: None,
        },
        Some(Err(e)) => damaged(e.to_string()),
        Some(Ok(r)) => match r.quick_check() {
            Ok(v) if v == "ok" => Check {
                name: "database",
                status: Status::Ok,
                detail: format!("{} passes SQLite's quick_check", db.display()),
                fix: None,
            },
            Ok(v) => damaged(format!("quick_check says {v}")),
            Err(e) => damaged(e.to_string()),
        },
    }
}

fn no_data(data_dir: &std::path::Path) -> Check {
    Check {
        name: "data",
        status: Status::Fail(Problem::NoData),
        detail: format!("nothing received yet (history in {})", data_dir.display()),
        fix: Some("start a new Claude Code session after `tokentray setup`; running sessions keep their old settings".into()),
    }
}

struct Health {
    version: String,
    pid: u64,
    ports: Vec<u16>,
}

/// `GET /api/health` on the metrics address; `None` unless tokentray answers.
fn probe_health(metrics: &str) -> Option<Health> {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder().timeout_global(Some(PROBE_TIMEOUT)).build(),
    );
    let addr = connectable(metrics)?;
    let mut resp = agent.get(&format!("http://{addr}/api/health")).call().ok()?;
    let text = resp.body_mut().read_to_string().ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    if v["service"] != "tokentray" {
        return None;
    }
    let ports = ["otlp_grpc", "otlp_http", "metrics"]
        .iter()
        .filter_map(|k| v["endpoints"][k].as_str().map(port_of))
        .collect();
    Some(Health {
        version: v["version"].as_str().unwrap_or("?").to_string(),
        pid: v["pid"].as_u64().unwrap_or(0),
        ports,
    })
}

fn port_check(what: &str, addr: &str, flag: &str, health: Option<&Health>) -> Check {
    let name = "port";
    let port = port_of(addr);
    if health.is_some_and(|h| h.ports.contains(&port)) {
        return Check {
            name,
            status: Status::Ok,
            detail: format!("{addr} ({what}) is tokentray's"),
            fix: None,
        };
    }
    let taken = |by: String| {
        Check {
        name,
        status: Status::Fail(Problem::PortTaken),
        detail: format!("{addr} ({what}) is held by {by}"),
        fix: Some(format!("stop that program, or move tokentray to another port with {flag} (and run `tokentray setup` again)")),
    }
    };
    let Some(sock) = connectable(addr) else {
        return Check {
            name,
            status: Status::Warn,
            detail: format!("{addr} ({what}) is not a valid address"),
            fix: Some(format!("fix {flag}")),
        };
    };
    if let Some(owner) = doctor::port_owner(sock) {
        let by = if owner.pid == std::process::id() {
            "this process".into()
        } else {
            format!("{} (pid {})", owner.name, owner.pid)
        };
        return taken(by);
    }
    if TcpStream::connect_timeout(&sock, PROBE_TIMEOUT).is_ok() {
        return taken("another program (not visible to this user)".into());
    }
    Check {
        name,
        status: Status::Info,
        detail: format!("{addr} ({what}) is free: tokentray binds it when it starts"),
        fix: None,
    }
}

/// A wildcard bind as the loopback address a client would use.
fn connectable(addr: &str) -> Option<SocketAddr> {
    endpoints::connectable(addr).to_socket_addrs().ok()?.next()
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0)
}

fn ago(ns: i64) -> String {
    let s = ns / 1_000_000_000;
    match s {
        ..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86_399 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

fn print(checks: &[Check]) {
    println!("tokentray doctor");
    for c in checks {
        let mark = match c.status {
            Status::Ok => "  ok ",
            Status::Info => " info",
            Status::Warn => " warn",
            Status::Fail(_) => " FAIL",
        };
        println!("{mark}  {:<21} {}", c.name, c.detail);
        if let Some(fix) = &c.fix {
            println!("       {:<21} fix: {fix}", "");
        }
    }
    let code = doctor::exit_code(checks);
    if code == 0 {
        println!("All good: Claude Code's usage reaches tokentray.");
    } else {
        println!("Exit code {code}: fix the first FAIL above first.");
    }
}

/// Forwarding is optional: not set up or off is information; a retrying or paused forwarder is
/// a warning with its fix, never a failure of the local setup.
fn forwarding(config: &Config, db: &std::path::Path, have_db: bool, now_ns: i64) -> Check {
    let status = if have_db {
        tokentray_core::forward::queue::Queue::open(db)
            .and_then(|q| tokentray_core::forward::control::status(&q, &config.forward, now_ns))
    } else {
        Err(tokentray_core::forward::ForwardError::Config("no history yet".into()))
    };
    match status {
        Ok(st) => match st.state {
            "retrying" => Check {
                name: "forwarding",
                status: Status::Warn,
                detail: st.summary,
                fix: Some(format!("check that {} is reachable; nothing is lost meanwhile ({} request(s) queued)", st.endpoint.unwrap_or_default(), st.queue.requests)),
            },
            "paused" => Check { name: "forwarding", status: Status::Warn, detail: st.summary, fix: Some("store the right token: echo 'Authorization=Bearer …' | tokentray forward set-headers".into()) },
            "up to date" | "sending" => Check { name: "forwarding", status: Status::Ok, detail: st.summary, fix: None },
            _ => Check { name: "forwarding", status: Status::Info, detail: st.summary, fix: None },
        },
        Err(_) if config.forward.endpoint.is_none() => Check { name: "forwarding", status: Status::Info, detail: "not set up (optional: tokentray forward setup)".into(), fix: None },
        Err(e) => Check { name: "forwarding", status: Status::Info, detail: format!("cannot read its state: {e}"), fix: None },
    }
}

/// The two sources reconciled: sessions where telemetry and the transcripts disagree, and
/// models without a price (informational: neither changes the exit code).
fn transcript_checks(reader: &tokentray_core::store::Reader, config: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    let info =
        |detail: String| Check { name: "transcripts", status: Status::Info, detail, fix: None };
    if let Ok(sessions) = reader.disagreeing_sessions() {
        for d in sessions.iter().take(10) {
            out.push(info(format!(
                "session {}: {} requests only telemetry saw, {} only the transcripts",
                d.session_id, d.telemetry_only, d.transcripts_only
            )));
        }
    }
    let prices = tokentray_core::pricing::PriceTable::with_overrides(&config.pricing);
    let mut all = match tokentray_core::store::Reader::open(&config.data_dir().unwrap_or_default())
    {
        Ok(r) => r,
        Err(_) => return out,
    };
    all.set_prices(prices);
    if let Ok(report) = all.report("all", tokentray_core::query::TimeRange::ALL, None) {
        for (model, tokens) in &report.figures.transcripts.unpriced_tokens {
            out.push(Check {
                name: "pricing",
                status: Status::Warn,
                detail: format!("{model}: {tokens} tokens are unpriced (no Claude Code cost, no price in the table)"),
                fix: Some(format!("add [pricing.models.\"{model}\"] to the config")),
            });
        }
    }
    out
}

/// Attributes left off `/metrics` (their label name is reserved or tokentray's own): said only
/// when there were any, as a warning (the exit code stays).
fn dropped_labels_check(reader: &Reader) -> Option<Check> {
    let (count, names) = reader.dropped_label_attributes().ok()?;
    if count == 0 {
        return None;
    }
    let (noun, verb) = if count == 1 { ("attribute", "was") } else { ("attributes", "were") };
    let examples =
        if names.is_empty() { String::new() } else { format!(" (e.g. {})", names.join(", ")) };
    Some(Check {
        name: "labels",
        status: Status::Warn,
        detail: format!(
            "{count} {noun} {verb} dropped from /metrics to keep Prometheus labels unique{examples}: Prometheus reserves those names or tokentray sets them itself; the totals are kept"
        ),
        fix: None,
    })
}
