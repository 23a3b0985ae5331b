//! `tokentray serve`: the engine without a window.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use tokentray_core::budget::Evaluator;
use tokentray_core::config::Config;
use tokentray_core::forward::Forwarder;
use tokentray_core::server::{self, Listeners};
use tokentray_core::store::{LockError, Store, StoreError};

use crate::process::{init_logging, terminated, ListenArgs};

#[path = "service.rs"]
mod service;

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub listen: ListenArgs,
    /// Instead of serving: install, enable and start a systemd user service that runs this
    /// `serve` with the same data dir, config file and listen flags
    #[arg(long)]
    pub install_service: bool,
    /// Refuse requests without this header: NAME=@file:PATH (value read from a file) or
    /// NAME=@keychain (stored with `tokentray receiver set-header NAME`). Repeatable. Never the
    /// value itself: command lines are visible to every user.
    #[arg(long, value_name = "NAME=@SOURCE")]
    pub require_header: Vec<String>,
}

pub fn run(mut config: Config, args: ServeArgs, config_file: PathBuf) -> anyhow::Result<ExitCode> {
    if args.install_service {
        return service::install(&config, &args.listen, &args.require_header, &config_file);
    }
    init_logging();
    args.listen.apply(&mut config.listen);
    config.receiver.require_headers.extend(args.require_header);
    // A missing secret is a start-up error, before any port is taken.
    if let Err(e) = tokentray_core::receiver::auth::resolve_all(&config.receiver.require_headers) {
        eprintln!("tokentray: {e}");
        return Ok(ExitCode::from(2));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
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
    let store = match Store::open_shaped(&data_dir, &config.metrics.shape()) {
        Ok(store) => store,
        // A second engine on the same history: said in one line, before anything changed.
        Err(e @ StoreError::Locked(LockError::Held { .. })) => {
            eprintln!("tokentray: {e}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => {
            return Err(e).with_context(|| format!("opening the history in {}", data_dir.display()))
        }
    };
    store
        .announce_listeners(addrs.otlp_grpc, addrs.otlp_http, addrs.metrics)
        .context("writing the engine's lock file")?;
    tracing::info!(data_dir = %data_dir.display(), series = store.series_count(), "history loaded");
    // Budgets are evaluated after every commit; alerts go to the log and, as configured, to the
    // desktop, a command and a webhook. Dropped (stopped) when serving ends.
    let notifier = crate::alerts::for_serve(&config.alerts)?;
    let _budgets = Evaluator::new(&store, config.budgets.clone(), Arc::new(notifier))
        .and_then(|e| e.reload_budgets_from(config_file).spawn())
        .context("starting budget alerts")?;
    // Forwarding to the team, as `tokentray forward` configured it; stopped when serving ends.
    let _forwarder = Forwarder::start(store.clone(), &config).context("starting forwarding")?;
    // Claude Code's transcripts already on disk, read by this engine (stopped when serving ends).
    let _transcripts = tokentray_core::transcripts::background::BackgroundImport::start(
        &store,
        &config.transcripts,
    );
    // The signal handlers before the listening line: whoever waits for that line may stop us
    // right after it.
    let shutdown = {
        let _in_runtime = runtime.enter();
        terminated()
    };
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{addrs}")?;
        out.flush()?;
    }
    runtime.block_on(server::run(listeners, store, &config, shutdown))?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
