//! The parts of `tokentray doctor` that are pure logic or read the OS: who holds a port, and
//! whether Claude Code's settings point at this tokentray. The CLI gathers the facts (an HTTP
//! probe, the settings file, the history) and prints the verdicts.

use std::net::SocketAddr;

use serde_json::Value;

/// One line of the doctor's report.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// What was checked, as shown at the start of the line ("data directory", say).
    pub name: &'static str,
    /// The verdict; only [`Status::Fail`] affects the exit code.
    pub status: Status,
    /// What was found, in words for the user (a path, a port, an error message).
    pub detail: String,
    /// What to do about it (for warnings and failures).
    pub fix: Option<String>,
}

/// The verdict of one [`Check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Nothing to report: the thing checked works.
    Ok,
    /// Worth knowing, not wrong (forwarding off, say).
    Info,
    /// Likely wrong or degraded, but not a failure: it leaves the exit code at 0.
    Warn,
    /// Broken; the [`Problem`] names what failed and sets the exit code.
    Fail(Problem),
}

/// What failed, each with its own exit code so scripts can tell them apart. Ordered from the
/// most fundamental: a taken port explains why the engine is down, which explains why no data
/// arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Problem {
    /// A port tokentray is configured for is held by another program.
    PortTaken = 10,
    /// Nothing answers where the engine should be.
    EngineDown = 11,
    /// Claude Code's settings do not send telemetry here (off, or protocol and port disagree).
    ClaudeSettings = 12,
    /// Nothing was ever received.
    NoData = 13,
    /// The history database fails its integrity check.
    Database = 14,
    /// The data directory cannot be used: a file in its place, missing where it was named, or
    /// not readable by this user (issue 16). Not damage: the history stays where it is.
    DataDir = 15,
}

impl Problem {
    /// The process exit code for this failure (10 to 15, the discriminant).
    pub fn exit_code(self) -> u8 {
        self as u8
    }
}

/// The exit code of a report: the most fundamental failure's (see [`Problem`]); 0 without one.
pub fn exit_code(checks: &[Check]) -> u8 {
    checks
        .iter()
        .filter_map(|c| if let Status::Fail(p) = c.status { Some(p) } else { None })
        .min()
        .map_or(0, Problem::exit_code)
}

/// A process listening on a TCP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortOwner {
    /// The process id.
    pub pid: u32,
    /// The process's command name, from `/proc/<pid>/comm` (trimmed).
    pub name: String,
}

/// Who listens on `addr`'s port (any local address), from `/proc` on Linux: the socket's inode
/// in `/proc/net/tcp{,6}`, then the process with that socket open. `None` when nobody listens,
/// or the owner is not visible to this user, or on other systems.
pub fn port_owner(addr: SocketAddr) -> Option<PortOwner> {
    let inodes = listening_inodes(addr.port());
    if inodes.is_empty() {
        return None;
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else { continue };
            let target = target.to_string_lossy();
            let Some(inode) = target.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']'))
            else {
                continue;
            };
            if inodes.iter().any(|i| i == inode) {
                let name = std::fs::read_to_string(entry.path().join("comm"))
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default();
                return Some(PortOwner { pid, name });
            }
        }
    }
    None
}

/// Inodes of sockets in LISTEN state on `port`.
fn listening_inodes(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let (Some(local), Some(state), Some(inode)) = (cols.get(1), cols.get(3), cols.get(9))
            else {
                continue;
            };
            let listening = *state == "0A";
            let same_port = local.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok())
                == Some(port);
            if listening && same_port && *inode != "0" {
                out.push((*inode).to_string());
            }
        }
    }
    out
}

/// Whether Claude Code's settings (`env` of settings.json) send metrics and events to this
/// tokentray: telemetry on, the OTLP exporters, and the protocol matching the port (gRPC to the
/// gRPC port, http/* to the HTTP port). `Err` says what is wrong, in words.
pub fn claude_settings_point_here(
    settings: &Value,
    grpc_port: u16,
    http_port: u16,
) -> Result<String, String> {
    let env = settings.get("env").cloned().unwrap_or(Value::Null);
    let get = |k: &str| {
        env.get(k).map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
    };
    if get("CLAUDE_CODE_ENABLE_TELEMETRY").as_deref() != Some("1") {
        return Err("telemetry is off: CLAUDE_CODE_ENABLE_TELEMETRY is not \"1\" in env".into());
    }
    for k in ["OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER"] {
        if !get(k).is_some_and(|v| v.split(',').any(|e| e.trim() == "otlp")) {
            return Err(format!(
                "{k} is {} (tokentray needs otlp)",
                get(k).map(|v| format!("\"{v}\"")).unwrap_or_else(|| "not set".into())
            ));
        }
    }
    let protocol = get("OTEL_EXPORTER_OTLP_PROTOCOL").unwrap_or_else(|| "grpc".into());
    let Some(endpoint) = get("OTEL_EXPORTER_OTLP_ENDPOINT") else {
        return Err("OTEL_EXPORTER_OTLP_ENDPOINT is not set".into());
    };
    let port = endpoint_port(&endpoint).ok_or_else(|| {
        format!("OTEL_EXPORTER_OTLP_ENDPOINT={endpoint} has no port tokentray can recognise")
    })?;
    let (want, other, want_name) = match protocol.as_str() {
        "grpc" => (grpc_port, http_port, "OTLP/gRPC"),
        "http/protobuf" | "http/json" => (http_port, grpc_port, "OTLP/HTTP"),
        p => return Err(format!("OTEL_EXPORTER_OTLP_PROTOCOL={p} is not one Claude Code speaks (grpc, http/protobuf, http/json)")),
    };
    if port == want {
        Ok(format!("{protocol} to {endpoint}"))
    } else if port == other {
        Err(format!("protocol {protocol} is sent to port {port}, tokentray's {} port; {protocol} goes to {want_name} port {want}", if want_name == "OTLP/gRPC" { "OTLP/HTTP" } else { "OTLP/gRPC" }))
    } else {
        Err(format!(
            "OTEL_EXPORTER_OTLP_ENDPOINT={endpoint} is not tokentray's {want_name} port {want}"
        ))
    }
}

/// The port of `http://host:port[/path]` (the scheme's default when none is written).
fn endpoint_port(endpoint: &str) -> Option<u16> {
    let (scheme, rest) = endpoint.split_once("://")?;
    let authority = rest.split('/').next()?;
    let port = if authority.starts_with('[') {
        authority.rsplit_once("]:").map(|(_, p)| p)
    } else {
        authority.rsplit_once(':').map(|(_, p)| p)
    };
    match port {
        Some(p) => p.parse().ok(),
        None => match scheme {
            "http" => Some(80),
            "https" => Some(443),
            _ => None,
        },
    }
}

/// The variables whose value in the shell differs from the settings file's `env` (or is set in
/// the shell only): `(name, shell value, settings value)`.
pub fn shell_overrides(
    settings: &Value,
    shell: &[(String, String)],
) -> Vec<(String, String, Option<String>)> {
    const KEYS: [&str; 7] = [
        "CLAUDE_CODE_ENABLE_TELEMETRY",
        "OTEL_METRICS_EXPORTER",
        "OTEL_LOGS_EXPORTER",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    ];
    let env = settings.get("env");
    shell
        .iter()
        .filter(|(k, _)| KEYS.contains(&k.as_str()))
        .filter_map(|(k, v)| {
            let in_settings =
                env.and_then(|e| e.get(k)).and_then(Value::as_str).map(str::to_string);
            (in_settings.as_deref() != Some(v.as_str()))
                .then(|| (k.clone(), v.clone(), in_settings))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(env: &str) -> Value {
        serde_json::from_str(&format!("{{\"env\": {env}}}")).expect("json")
    }

    const ON: &str = r#""CLAUDE_CODE_ENABLE_TELEMETRY": "1", "OTEL_METRICS_EXPORTER": "otlp", "OTEL_LOGS_EXPORTER": "otlp""#;

    #[test]
    fn protocol_and_port_must_agree() {
        let ok = settings(&format!(
            r#"{{{ON}, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}}"#
        ));
        assert!(claude_settings_point_here(&ok, 4317, 4318).is_ok());
        let swapped = settings(&format!(
            r#"{{{ON}, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4317"}}"#
        ));
        let e = claude_settings_point_here(&swapped, 4317, 4318).expect_err("mismatch");
        assert!(
            e.contains("http/protobuf is sent to port 4317, tokentray's OTLP/gRPC port"),
            "{e}"
        );
        let elsewhere = settings(&format!(
            r#"{{{ON}, "OTEL_EXPORTER_OTLP_ENDPOINT": "https://otel.example.com"}}"#
        ));
        assert!(claude_settings_point_here(&elsewhere, 4317, 4318)
            .expect_err("elsewhere")
            .contains("not tokentray's OTLP/gRPC port 4317"));
        let off = settings(r#"{"OTEL_METRICS_EXPORTER": "otlp"}"#);
        assert!(claude_settings_point_here(&off, 4317, 4318)
            .expect_err("off")
            .contains("telemetry is off"));
        let console = settings(
            r#"{"CLAUDE_CODE_ENABLE_TELEMETRY": "1", "OTEL_METRICS_EXPORTER": "console", "OTEL_LOGS_EXPORTER": "otlp"}"#,
        );
        assert!(claude_settings_point_here(&console, 4317, 4318)
            .expect_err("console")
            .contains("OTEL_METRICS_EXPORTER is \"console\""));
    }

    #[test]
    fn ports_of_endpoints() {
        assert_eq!(endpoint_port("http://127.0.0.1:4317"), Some(4317));
        assert_eq!(endpoint_port("http://[::1]:4318/prefix"), Some(4318));
        assert_eq!(endpoint_port("https://otel.example.com"), Some(443));
        assert_eq!(endpoint_port("localhost:4317"), None);
    }

    #[test]
    fn shell_values_that_differ_are_overrides() {
        let s = settings(
            r#"{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "CLAUDE_CODE_ENABLE_TELEMETRY": "1"}"#,
        );
        let shell = vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), "http://collector:4317".to_string()),
            ("CLAUDE_CODE_ENABLE_TELEMETRY".to_string(), "1".to_string()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL".to_string(), "http/json".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ];
        let o = shell_overrides(&s, &shell);
        assert_eq!(o.len(), 2, "{o:?}");
        assert_eq!(
            o[0],
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
                "http://collector:4317".into(),
                Some("http://127.0.0.1:4317".into())
            )
        );
        assert_eq!(o[1].2, None);
    }

    #[test]
    fn a_listening_socket_is_found_with_its_process() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        if !std::path::Path::new("/proc/net/tcp").exists() {
            return; // not Linux: the doctor says "another program" without a name
        }
        let owner = port_owner(addr).expect("this test process holds the port");
        assert_eq!(owner.pid, std::process::id());
        drop(l);
        assert_eq!(port_owner(addr), None);
    }
}
