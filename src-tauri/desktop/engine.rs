//! The engine inside the tray app: the same listeners, data dir and config as `tokentray serve`,
//! served on a Tokio runtime of its own until Quit.
//!
//! A port that is already held (a running `serve`, an earlier collector, another program) does
//! not stop the app: it then reads the same data dir without receiving, and says so in the tray,
//! instead of exiting where a tray user would never see the message.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokentray_core::budget::{Evaluator, EvaluatorHandle, Notifier};
use tokentray_core::config::Config;
use tokentray_core::dashboard::Endpoints;
use tokentray_core::forward::Forwarder;
use tokentray_core::server::{self, BoundAddrs, Listeners, ServerError};
use tokentray_core::store::{
    running_engine, Change, EngineInfo, LockError, Store, StoreError, DB_FILE,
};
use tokio::sync::{broadcast, oneshot};

use super::error::DesktopError;

/// How long Quit waits for in-flight requests and the store's queue before exiting anyway.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What the engine is doing, for the tray and the logs.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineStatus {
    Running(BoundAddrs),
    /// Another program holds a port; nothing is received, the history is only read.
    PortsInUse {
        port: u16,
        what: &'static str,
        detail: String,
    },
    /// Could not start for another reason (bad address, unreadable history, …).
    Failed(String),
    /// Another tokentray engine (a `serve`, another tray) holds this data directory: the tray
    /// shows that engine's history, read from the shared database (issue 14/16).
    Viewer(EngineInfo),
}

impl EngineStatus {
    /// One line for the tray's status row; `None` while running normally.
    pub fn problem(&self) -> Option<String> {
        match self {
            EngineStatus::Running(_) => None,
            EngineStatus::PortsInUse { port, what, .. } => {
                Some(format!("Ports in use — engine not started (port {port}, {what})"))
            }
            EngineStatus::Failed(reason) => Some(format!("Engine not started: {reason}")),
            EngineStatus::Viewer(info) => Some(format!(
                "Showing the history of the tokentray engine already running (pid {})",
                info.pid
            )),
        }
    }

    /// The tray label when there is a problem (short: it sits in the panel).
    pub fn problem_title(&self) -> Option<&'static str> {
        match self {
            EngineStatus::Running(_) => None,
            EngineStatus::PortsInUse { .. } => Some("Ports in use — engine not started"),
            EngineStatus::Failed(_) => Some("Engine not started"),
            // The label is today's spend, read from the running engine's history.
            EngineStatus::Viewer(_) => None,
        }
    }
}

/// Where changes to the history come from.
pub enum Changes {
    /// The engine's own store publishes each commit.
    Store(broadcast::Receiver<Change>),
    /// Another process writes the database: watch its files.
    Files(PathBuf),
}

pub struct Engine {
    runtime: tokio::runtime::Runtime,
    pub status: EngineStatus,
    pub data_dir: PathBuf,
    /// The addresses bound, or (when another program holds them) the configured ones, which is
    /// where that program listens and so what Claude Code should point at.
    pub endpoints: Endpoints,
    store: Option<Store>,
    /// Budget alerts, driven by the store's commits; stopped before the store closes.
    budgets: Option<EvaluatorHandle>,
    /// Forwarding to the team's collector; it follows `[forward]` and the switch in the
    /// database by itself. Dropped (stopped) before the store closes.
    forwarder: Option<Forwarder>,
    /// Claude Code's transcripts on disk, read by this engine; stopped before the store closes.
    transcripts: Option<tokentray_core::transcripts::background::BackgroundImport>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), ServerError>>>,
}

impl Engine {
    /// Binds, opens the history and starts serving. Only a runtime that cannot start is an error:
    /// every engine problem becomes an [`EngineStatus`] the tray shows.
    pub fn start(config: &Config) -> Result<Engine, DesktopError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            // Two workers carry a single developer's telemetry with room to spare, and keep the
            // idle process small.
            .worker_threads(2)
            .thread_name("tokentray-engine")
            .enable_all()
            .build()
            .map_err(DesktopError::Runtime)?;
        let data_dir = config.data_dir()?;
        let configured = Endpoints::from_listen(&config.listen);
        let mut engine = Engine {
            runtime,
            status: EngineStatus::Failed(String::new()),
            data_dir,
            endpoints: configured,
            store: None,
            budgets: None,
            forwarder: None,
            transcripts: None,
            stop: None,
            server: None,
        };

        // Another engine on this data directory: view its history instead of competing for it.
        if let Some(info) = running_engine(&engine.data_dir) {
            engine.become_viewer(info);
            return Ok(engine);
        }
        let listeners = match Listeners::bind(&config.listen) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("tokentray: {e}");
                eprintln!(
                    "tokentray: the tray shows the history in {} without receiving",
                    engine.data_dir.display()
                );
                engine.status = match e {
                    ServerError::PortInUse { port, what, .. } => {
                        EngineStatus::PortsInUse { port, what, detail: e.to_string() }
                    }
                    other => EngineStatus::Failed(other.to_string()),
                };
                return Ok(engine);
            }
        };
        let addrs = match listeners.addrs() {
            Ok(a) => a,
            Err(e) => {
                engine.status =
                    EngineStatus::Failed(format!("cannot read the bound addresses: {e}"));
                return Ok(engine);
            }
        };
        let store = match Store::open_shaped(&engine.data_dir, &config.metrics.shape()) {
            Ok(s) => s,
            Err(StoreError::Locked(LockError::Held { .. })) => {
                // It started between our look and our open: the same as above.
                drop(listeners);
                if let Some(info) = running_engine(&engine.data_dir) {
                    engine.become_viewer(info);
                }
                return Ok(engine);
            }
            Err(e) => {
                eprintln!("tokentray: opening the history in {}: {e}", engine.data_dir.display());
                engine.status = EngineStatus::Failed(e.to_string());
                return Ok(engine);
            }
        };
        if let Err(e) = store.announce_listeners(addrs.otlp_grpc, addrs.otlp_http, addrs.metrics) {
            tracing::warn!(error = %e, "cannot record the bound addresses in the lock file");
        }
        tracing::info!(data_dir = %engine.data_dir.display(), series = store.series_count(), "history loaded");

        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server_store = store.clone();
        let server_config = config.clone();
        let handle = engine.runtime.spawn(async move {
            let shutdown = async move {
                let _ = stop_rx.await;
            };
            server::run(listeners, server_store, &server_config, shutdown).await
        });
        engine.endpoints = Endpoints::from_bound(&addrs);
        engine.status = EngineStatus::Running(addrs);
        engine.transcripts = tokentray_core::transcripts::background::BackgroundImport::start(
            &store,
            &config.transcripts,
        );
        engine.store = Some(store);
        engine.stop = Some(stop_tx);
        engine.server = Some(handle);
        // The same line as `serve`: scripts and tests learn the ports (port 0) from it.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{addrs}");
        let _ = out.flush();
        Ok(engine)
    }

    /// Shows the running engine's history: its addresses are where Claude Code should send.
    fn become_viewer(&mut self, info: EngineInfo) {
        eprintln!(
            "tokentray: another tokentray engine ({info}) holds {}; the tray shows its history",
            self.data_dir.display()
        );
        let or = |addr: &Option<String>, configured: &str| {
            addr.clone().unwrap_or_else(|| configured.to_string())
        };
        self.endpoints = Endpoints {
            otlp_grpc: or(&info.otlp_grpc, &self.endpoints.otlp_grpc),
            otlp_http: or(&info.otlp_http, &self.endpoints.otlp_http),
            metrics: or(&info.metrics, &self.endpoints.metrics),
        };
        self.status = EngineStatus::Viewer(info);
    }

    /// Starts evaluating budgets after each commit (only when this engine receives: otherwise
    /// the program holding the ports evaluates them). A failure leaves the tray working
    /// without alerts, and says so in the log.
    pub fn start_budgets(&mut self, config: &Config, notifier: Arc<dyn Notifier>) {
        let Some(store) = &self.store else { return };
        let mut evaluator = match Evaluator::new(store, config.budgets.clone(), notifier) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("budget alerts are off: {e}");
                return;
            }
        };
        if let Some(file) = &config.source {
            evaluator = evaluator.reload_budgets_from(file.clone());
        }
        match evaluator.spawn() {
            Ok(handle) => self.budgets = Some(handle),
            Err(e) => tracing::warn!("budget alerts are off: {e}"),
        }
    }

    /// Starts the forwarder (only when this engine receives: otherwise the program holding the
    /// ports has the queue filled by its own store, and forwards it). It runs whether or not
    /// forwarding is set up and on, so that `tokentray forward setup` and the tray's checkbox
    /// take effect without a restart. A failure leaves the tray working, and says so in the log.
    pub fn start_forwarding(&mut self, config: &Config) {
        let Some(store) = &self.store else { return };
        match Forwarder::start(store.clone(), config) {
            Ok(f) => self.forwarder = Some(f),
            Err(e) => tracing::warn!("forwarding to the team is off: {e}"),
        }
    }

    pub fn handle(&self) -> tokio::runtime::Handle {
        self.runtime.handle().clone()
    }

    pub fn changes(&self) -> Changes {
        match &self.store {
            Some(store) => Changes::Store(store.subscribe()),
            None => Changes::Files(self.data_dir.clone()),
        }
    }

    /// Stops serving: listeners close (ports released), in-flight requests finish, the store
    /// commits what it queued. Waits at most [`STOP_TIMEOUT`].
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            match self.runtime.block_on(async { tokio::time::timeout(STOP_TIMEOUT, server).await })
            {
                Ok(Ok(Ok(()))) => tracing::info!("engine stopped"),
                Ok(Ok(Err(e))) => tracing::warn!("engine stopped with an error: {e}"),
                Ok(Err(e)) => tracing::warn!("engine task failed: {e}"),
                Err(_) => {
                    tracing::warn!("engine did not stop within {STOP_TIMEOUT:?}; exiting anyway")
                }
            }
        }
        if let Some(budgets) = self.budgets.take() {
            budgets.stop();
        }
        // Waits for the send in flight, if any; what is still queued stays for the next start.
        drop(self.forwarder.take());
        drop(self.transcripts.take());
        if let Some(store) = self.store.take() {
            store.close();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Size and modification time of the database and its WAL: changes when another process commits.
pub fn db_fingerprint(data_dir: &Path) -> Vec<Option<(u64, std::time::SystemTime)>> {
    [DB_FILE.to_string(), format!("{DB_FILE}-wal")]
        .iter()
        .map(|f| {
            std::fs::metadata(data_dir.join(f))
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?)))
        })
        .collect()
}
