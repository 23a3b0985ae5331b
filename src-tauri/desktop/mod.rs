//! The desktop app: a tray icon with today's spend and the engine inside (`tokentray`,
//! `tokentray tray`), and a dashboard window.
//!
//! Light when idle: the window runs in a child process (`tokentray window`, started on "Open
//! dashboard") that exits when the window closes. WebKit's web and network processes
//! (250–400 MiB) and the UI-side heap of a webview go away with it; destroying the webview in
//! the tray process would not be enough, since WebKitGTK keeps its network process, and Tauri
//! its web context, for the lifetime of the process. The tray process never creates a webview.
//!
//! * [`tray_app`] — the tray process: single instance, engine, tray, login entry.
//! * [`engine`] — bind, open the history, serve on a Tokio runtime, stop on Quit.
//! * [`tray`] — the icon, its label (today's spend) and menu.
//! * [`live`] — reacts to committed changes: refreshes the tray, tells the window.
//! * [`launcher`] — starts, shows, feeds and ends the window process from the tray.
//! * [`window`] — the window process: the webview, and what the tray tells it on stdin.
//! * [`commands`] — what the window's JavaScript may call (thin calls into the core).
//! * [`forward`] — "Forward to team": the switch, the status and the headers, for both.
//! * [`autostart`] — the arguments the login entry starts the app with.

mod autostart;
mod commands;
mod engine;
mod error;
mod forward;
mod launcher;
mod live;
mod tray;
mod tray_app;
mod window;

use std::path::PathBuf;
use std::sync::Mutex;

use tokentray_core::budget::BudgetsSource;
use tokentray_core::config::Config;

use crate::process::ListenArgs;
use tokentray_core::dashboard::Endpoints;
use tokentray_core::store::{Reader, StoreError};

pub use error::DesktopError;
pub use tray_app::run;
pub use window::run as run_window;

/// `tokentray tray` flags: the listen addresses as in `serve`, plus what to show at start.
#[derive(Debug, Default, clap::Args)]
pub struct TrayArgs {
    #[command(flatten)]
    pub listen: ListenArgs,
    /// Open the dashboard window right away (otherwise only the tray icon appears)
    #[arg(long)]
    pub open: bool,
}

/// `tokentray window` (started by the tray): where the engine listens, for the setup
/// instructions; the history comes from `--data-dir`.
#[derive(Debug, Default, clap::Args)]
pub struct WindowArgs {
    #[command(flatten)]
    pub listen: ListenArgs,
}

/// The global flags this launch was given, so that a login start behaves the same.
#[derive(Debug, Default, Clone)]
pub struct Launch {
    pub data_dir: Option<PathBuf>,
    pub config: Option<PathBuf>,
}

/// How a process reads the history: the data dir and one read connection.
pub struct Shared {
    pub endpoints: Endpoints,
    /// The budgets in effect, following edits of the config file.
    pub budgets: BudgetsSource,
    /// Forwarding to the team: its switch and status, `[forward]` following the config file.
    pub forward: forward::ForwardSource,
    data_dir: PathBuf,
    /// Opened on first use and kept (a report needs no fresh connection); dropped after an
    /// error so the next call reopens it.
    reader: Mutex<Option<Reader>>,
}

impl Shared {
    pub fn new(config: &Config, data_dir: PathBuf, endpoints: Endpoints) -> Shared {
        Shared { endpoints, budgets: BudgetsSource::of(config), forward: forward::ForwardSource::of(config, &data_dir), data_dir, reader: Mutex::new(None) }
    }

    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// Runs a query on the shared read connection. Blocking: call from a blocking thread.
    pub fn read<T, E: Into<DesktopError>>(&self, query: impl FnOnce(&Reader) -> Result<T, E>) -> Result<T, DesktopError> {
        with_kept(&self.reader, || Ok(Reader::open(&self.data_dir)?), query)
    }
}

/// Runs `f` on the connection kept in `slot`, opening it first if there is none. A connection
/// whose query failed is dropped, so the next call starts from a fresh one.
fn with_kept<C, T, E: Into<DesktopError>>(
    slot: &Mutex<Option<C>>,
    open: impl FnOnce() -> Result<C, DesktopError>,
    f: impl FnOnce(&C) -> Result<T, E>,
) -> Result<T, DesktopError> {
    let mut slot = slot.lock().map_err(|_| DesktopError::Store(StoreError::Poisoned))?;
    let conn = match slot.take() {
        Some(c) => c,
        None => open()?,
    };
    let result = f(&conn);
    if result.is_ok() {
        *slot = Some(conn);
    }
    result.map_err(Into::into)
}

/// The app context (tauri.conf.json, capabilities, icons, ui/), generated once for both
/// processes.
fn context() -> tauri::Context {
    tauri::generate_context!()
}
