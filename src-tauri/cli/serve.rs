//! `tokentray serve`: the engine without a window.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use tokentray_core::budget::Evaluator;
use tokentray_core::config::Config;
use tokentray_core::server::{self, Listeners};
use tokentray_core::store::Store;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// OTLP/gRPC listen address (port 0 picks a free port)
    #[arg(long, value_name = "ADDR")]
    pub otlp_grpc: Option<String>,
    /// OTLP/HTTP listen address
    #[arg(long, value_name = "ADDR")]
    pub otlp_http: Option<String>,
    /// Prometheus /metrics listen address
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
}

pub fn run(mut config: Config, args: ServeArgs, config_file: PathBuf) -> anyhow::Result<ExitCode> {
    init_logging();
    if let Some(a) = args.otlp_grpc {
        config.listen.otlp_grpc = a;
    }
    if let Some(a) = args.otlp_http {
        config.listen.otlp_http = a;
    }
    if let Some(a) = args.metrics {
        config.listen.metrics = a;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    // Bind first: a taken port is reported before anything else happens.
    let listeners = match Listeners::bind(&config.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("tokentray: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let addrs = listeners.addrs().context("reading bound addresses")?;
    let data_dir = config.data_dir()?;
    let store = Store::open(&data_dir).with_context(|| format!("opening the history in {}", data_dir.display()))?;
    tracing::info!(data_dir = %data_dir.display(), series = store.series_count(), "history loaded");
    // Budgets are evaluated after every commit; alerts go to the log and, as configured, to the
    // desktop, a command and a webhook. Dropped (stopped) when serving ends.
    let notifier = crate::alerts::for_serve(&config.alerts)?;
    let _budgets = Evaluator::new(&store, config.budgets.clone(), Arc::new(notifier))
        .and_then(|e| e.reload_budgets_from(config_file).spawn())
        .context("starting budget alerts")?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{addrs}")?;
        out.flush()?;
    }
    runtime.block_on(server::run(listeners, store, &config, shutdown_signal()))?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Logs go to stderr (stdout carries the `listening` line). `TOKENTRAY_LOG` sets the filter.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOKENTRAY_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
