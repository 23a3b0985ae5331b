//! `tokentray forward`: where to forward (setup, into the config file), the headers (into the
//! OS keychain, read from stdin or `OTEL_EXPORTER_OTLP_HEADERS`, never from an argument), on/off,
//! and the status in words.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Local};
use clap::{Args, Subcommand};
use tokentray_core::config::{Config, ForwardProtocol};
use tokentray_core::forward::queue::Queue;
use tokentray_core::forward::{control, secret, Headers};
use tokentray_core::store::DB_FILE;

#[derive(Debug, Subcommand)]
pub enum ForwardCommand {
    /// Where to forward: `--endpoint https://otel.example.com:4317 --protocol grpc` (or
    /// http/protobuf, or prometheus-remote-write with a /api/v1/write URL)
    Setup(SetupArgs),
    /// Store headers (`Authorization=Bearer abc,X-Scope-OrgID=team-a`, percent-decoded) in the OS
    /// keychain, read from stdin or, with --from-env, from OTEL_EXPORTER_OTLP_HEADERS
    SetHeaders(SetHeadersArgs),
    /// Remove the stored headers from the keychain
    ClearHeaders,
    /// Start forwarding: a running tokentray queues from its next request and starts sending within 10 s
    On,
    /// Stop forwarding
    Off,
    /// Endpoint, headers (masked), queue, last success and last error
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// gRPC: https://host:4317; HTTP: the base URL (https://host:4318); remote write: the full
    /// URL. Without it, the configured endpoint stays.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// grpc, http/protobuf or prometheus-remote-write [default: the configured one, else grpc]
    #[arg(long)]
    pub protocol: Option<ForwardProtocol>,
    /// A PEM file of a CA to trust besides the system roots
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Added to every resource on the way out: team.id=payments,cost_center=42
    #[arg(long, value_name = "K=V,...")]
    pub resource_attributes: Option<String>,
    /// Who the data is from (attribute `developer`) [default: the configured one, else the OS user]
    #[arg(long, value_name = "NAME")]
    pub developer: Option<String>,
    /// The developer's team (attribute `team`); '' removes it
    #[arg(long, value_name = "NAME")]
    pub team: Option<String>,
    /// This machine's name (attribute `host.name`) [default: the host name]; '' removes it
    #[arg(long, value_name = "NAME")]
    pub machine: Option<String>,
    /// Also turn forwarding on
    #[arg(long)]
    pub on: bool,
}

#[derive(Debug, Args)]
pub struct SetHeadersArgs {
    /// Read OTEL_EXPORTER_OTLP_HEADERS instead of stdin
    #[arg(long)]
    pub from_env: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(long)]
    pub json: bool,
}

fn queue(config: &Config) -> anyhow::Result<Queue> {
    let dir = super::existing_data_dir(config)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(Queue::open(&dir.join(DB_FILE))?)
}

pub fn run(config: &Config, cmd: ForwardCommand, config_file: &Path) -> anyhow::Result<ExitCode> {
    match cmd {
        ForwardCommand::Setup(a) => {
            let resource_attributes = a
                .resource_attributes
                .as_deref()
                .map(control::parse_resource_attributes)
                .transpose()?;
            // Without --endpoint (only the identity changes) the rest of [forward] stays.
            let keep = a.endpoint.is_none();
            let endpoint = match a.endpoint.or_else(|| config.forward.endpoint.clone()) {
                Some(e) => e,
                None => anyhow::bail!("no endpoint is configured yet: add --endpoint URL"),
            };
            let protocol = a.protocol.unwrap_or(if keep {
                config.forward.protocol
            } else {
                ForwardProtocol::Grpc
            });
            let ca_file = a
                .ca_file
                .map(|p| std::path::absolute(&p).unwrap_or(p))
                .or_else(|| config.forward.ca_file.clone().filter(|_| keep));
            // The developer is always written out, so the config file says who the data is from.
            let developer = a
                .developer
                .or_else(|| config.forward.developer.clone())
                .or_else(tokentray_core::forward::identity::os_user);
            control::setup(
                config_file,
                &control::Setup {
                    endpoint: endpoint.clone(),
                    protocol,
                    ca_file,
                    resource_attributes,
                    developer,
                    team: a.team,
                    machine: a.machine,
                },
            )?;
            println!(
                "forwarding to {} over {} (written to {})",
                endpoint.trim(),
                protocol.name(),
                config_file.display()
            );
            let written = Config::from_file(config_file)?;
            let identity: Vec<String> =
                tokentray_core::forward::identity::attributes(&written.forward)
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
            println!("sent as:      {}", identity.join(", "));
            if a.on {
                control::set_enabled(&queue(config)?, true)?;
                println!("forwarding is on");
            } else {
                println!("turn it on with: tokentray forward on");
            }
            if protocol != ForwardProtocol::PrometheusRemoteWrite
                || endpoint.contains("/api/v1/write")
            {
                println!("headers (tokens): echo 'Authorization=Bearer …' | tokentray forward set-headers");
            } else {
                println!("note: a remote-write URL usually ends with /api/v1/write");
            }
            Ok(ExitCode::SUCCESS)
        }
        ForwardCommand::SetHeaders(a) => {
            let text = if a.from_env {
                std::env::var("OTEL_EXPORTER_OTLP_HEADERS")
                    .context("OTEL_EXPORTER_OTLP_HEADERS is not set")?
            } else {
                if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                    eprintln!(
                        "paste the headers (Authorization=Bearer …,X-Scope-OrgID=…), then Ctrl-D:"
                    );
                }
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("reading the headers from stdin")?;
                s
            };
            let headers = Headers::parse(text.trim())?;
            if headers.is_empty() {
                anyhow::bail!("no headers given; to remove the stored ones run: tokentray forward clear-headers");
            }
            secret::store(secret::FORWARD_HEADERS, &headers.to_text())?;
            control::headers_changed(&queue(config)?)?;
            println!("stored in the keychain: {}", headers.masked().join(", "));
            if config.forward.headers_file.is_some() {
                println!("note: [forward] headers_file is set in the config, and it wins over the keychain");
            }
            Ok(ExitCode::SUCCESS)
        }
        ForwardCommand::ClearHeaders => {
            let removed = secret::delete(secret::FORWARD_HEADERS)?;
            control::headers_changed(&queue(config)?)?;
            println!(
                "{}",
                if removed {
                    "headers removed from the keychain"
                } else {
                    "no headers were stored"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        ForwardCommand::On | ForwardCommand::Off => {
            let on = matches!(cmd, ForwardCommand::On);
            super::existing_data_dir(config)?;
            if on && config.forward.endpoint.is_none() {
                return Err(super::Usage(format!(
                    "forwarding has no endpoint yet, so it stays off; set one first: tokentray forward setup --endpoint URL --protocol grpc (config: {})",
                    config_file.display()
                ))
                .into());
            }
            control::set_enabled(&queue(config)?, on)?;
            match (&config.forward.endpoint, on) {
                (Some(e), true) => println!("forwarding to {e} is on"),
                _ => println!("forwarding is off"),
            }
            Ok(ExitCode::SUCCESS)
        }
        ForwardCommand::Status(a) => status(config, a.json),
    }
}

fn when(ns: Option<i64>) -> String {
    ns.and_then(|ns| DateTime::from_timestamp_nanos(ns).with_timezone(&Local).into())
        .map(|t: DateTime<Local>| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "never".into())
}

fn status(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    if config.forward.endpoint.is_none() && !json {
        // Nothing to look up (no keychain either): say how to set it up.
        println!("Forwarding is not set up. To send everything on to your team's collector: tokentray forward setup --endpoint URL --protocol grpc");
        return Ok(ExitCode::SUCCESS);
    }
    let q = queue(config)?;
    let st = control::status(&q, &config.forward, tokentray_core::ingest::now_ns())?;
    // The keychain may be missing (a server without a desktop session): say so, not fail.
    let headers = match secret::forward_headers(&config.forward) {
        _ if config.forward.endpoint.is_none() => Ok(Vec::new()),
        Ok(h) => Ok(h.masked()),
        Err(e) => Err(e.to_string()),
    };
    if json {
        let mut v = serde_json::to_value(&st)?;
        match &headers {
            Ok(h) => v["headers"] = serde_json::json!(h),
            Err(e) => v["headers_error"] = serde_json::json!(e),
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", st.summary);
    if let Some(e) = &st.endpoint {
        println!("endpoint:     {e} ({})", st.protocol);
    }
    match headers {
        Ok(h) if h.is_empty() => println!("headers:      none"),
        Ok(h) => println!("headers:      {}", h.join(", ")),
        Err(e) => println!("headers:      unavailable: {e}"),
    }
    if !st.resource_attributes.is_empty() {
        let attrs: Vec<String> =
            st.resource_attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("attributes:   {}", attrs.join(", "));
    }
    if !st.identity.is_empty() {
        let attrs: Vec<String> = st.identity.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("sent as:      {}", attrs.join(", "));
    }
    println!(
        "queue:        {} request(s), {} KiB; {} changed series",
        st.queue.requests,
        st.queue.bytes / 1024,
        st.queue.changed_series
    );
    println!("delivered:    {}", st.delivered);
    if st.dropped_rejected + st.dropped_overflow > 0 {
        println!(
            "dropped:      {} refused by the peer, {} for queue limits",
            st.dropped_rejected, st.dropped_overflow
        );
    }
    println!("last success: {}", when(st.last_success_ns));
    if let Some(e) = &st.last_error {
        println!("last error:   {e} ({})", when(st.last_error_ns));
    }
    if let Some(d) = st.last_drop.as_ref().filter(|d| Some(*d) != st.last_error.as_ref()) {
        println!("last drop:    {d}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `tokentray receiver set-header NAME`: the value `serve --require-header NAME=@keychain`
/// checks, read from stdin into the keychain.
#[derive(Debug, Subcommand)]
pub enum ReceiverCommand {
    /// Store the value a header must have (read from stdin) in the OS keychain
    SetHeader {
        /// Header name, e.g. Authorization
        name: String,
    },
}

pub fn run_receiver(cmd: ReceiverCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ReceiverCommand::SetHeader { name } => {
            let mut value = String::new();
            std::io::stdin().read_to_string(&mut value).context("reading the value from stdin")?;
            let value = value.trim_end_matches(['\r', '\n']);
            if value.is_empty() {
                anyhow::bail!("no value on stdin");
            }
            secret::store(&secret::receiver_header_entry(&name), value)?;
            println!("stored in the keychain; start the receiver with: tokentray serve --require-header '{name}=@keychain'");
            Ok(ExitCode::SUCCESS)
        }
    }
}
