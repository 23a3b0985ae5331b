//! The tray app (`tokentray`, `tokentray tray`): a tray icon with today's spend and the engine
//! inside, and what the dashboard window (`tokentray-window`, `src-tauri/window/`) shares with it.
//!
//! Light when idle: this process never links WebKit. It is built on the parts of Tauri that do
//! not need it (tray-icon, auto-launch, and tao's event loop outside Linux); linking Tauri itself would map and
//! relocate WebKitGTK and JavaScriptCore into the always-on process (as a Tauri app the tray
//! process was 71.7 MiB resident, without WebKit 34.5 MiB: BENCHMARKS.md).
//!
//! The window is a Tauri app in a child process, started on "Open dashboard", that exits when the
//! window closes: WebKit's web and network processes (250–400 MiB) and the UI-side heap of a
//! webview go away with it. Destroying a webview inside a long-lived process would not be
//! enough: WebKitGTK keeps its network process, and Tauri its web context, for the process's life.
//!
//! * [`tray_app`] — the tray process: single instance, engine, tray, login entry, event loop.
//! * [`event_loop`] — GTK's main loop on Linux (tao elsewhere), and sending events into it.
//! * [`engine`] — bind, open the history, serve on a Tokio runtime, stop on Quit.
//! * [`tray`] — the icon (one per state), its label (today's spend) and menu, what the menu
//!   does, and what happens on a desktop without a tray host.
//! * [`live`] — reacts to committed changes: refreshes the tray, tells the window.
//! * [`launcher`] — starts, shows, feeds and ends the window process from the tray.
//! * [`forward`] — "Forward to team": the switch, the status and the headers, for both.
//! * [`autostart`] — the login entry (XDG autostart, LaunchAgent, registry) and its arguments.
//! * [`single_instance`] — a second launch hands over to the first and exits.

mod autostart;
mod engine;
mod error;
mod event_loop;
pub mod forward;
mod launcher;
mod live;
mod single_instance;
mod tray;
mod tray_app;

use std::path::PathBuf;
use std::sync::Mutex;

use tokentray_core::budget::BudgetsSource;
use tokentray_core::config::Config;

use crate::process::ListenArgs;
use tokentray_core::dashboard::Endpoints;
use tokentray_core::store::{Reader, StoreError};

pub use error::DesktopError;
pub use tray_app::run;

/// `tokentray tray` flags: the listen addresses as in `serve`, plus what to show at start.
#[derive(Debug, Default, clap::Args)]
pub struct TrayArgs {
    #[command(flatten)]
    pub listen: ListenArgs,
    /// Open the dashboard window right away (otherwise only the tray icon appears)
    #[arg(long)]
    pub open: bool,
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
        Shared {
            endpoints,
            budgets: BudgetsSource::of(config),
            forward: forward::ForwardSource::of(config, &data_dir),
            data_dir,
            reader: Mutex::new(None),
        }
    }

    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// Runs a query on the shared read connection. Blocking: call from a blocking thread.
    pub fn read<T, E: Into<DesktopError>>(
        &self,
        query: impl FnOnce(&Reader) -> Result<T, E>,
    ) -> Result<T, DesktopError> {
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
