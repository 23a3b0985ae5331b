//! `tokentray-window`, the dashboard window's process (started by the tray `tokentray`): one
//! window, ~420×640, a Tauri app. It exits when the window closes, taking WebKit's processes and
//! memory with it. It reads the history itself (SQLite allows many readers); the tray tells it on
//! stdin when to reload (see the tray's `desktop::launcher`).
//!
//! * `main.rs` — arguments, the Tauri app, the window, the tray's lines on stdin.
//! * [`commands`] — what the page's JavaScript may call: thin calls into the core.

mod commands;

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use serde::Serialize;
use tauri::{
    AppHandle, Emitter, EventTarget, Manager, RunEvent, WebviewUrl, WebviewWindowBuilder,
    WindowEvent,
};
use tokentray::desktop::{DesktopError, Shared};
use tokentray::process::{init_logging, ListenArgs};
use tokentray_core::config::Config;
use tokentray_core::dashboard::Endpoints;

/// Started by the tray with the data dir, config and the addresses the engine listens on (for
/// the setup instructions of the empty state).
#[derive(Debug, Parser)]
#[command(
    name = "tokentray-window",
    version,
    about = "The tokentray dashboard window (started by the tray: run `tokentray`)"
)]
struct WindowArgs {
    /// Where the history database lives [default: the platform data directory]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Config file [default: config.toml in the platform config directory]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    listen: ListenArgs,
}

#[derive(Debug, thiserror::Error)]
enum WindowError {
    #[error("{0}")]
    Desktop(#[from] DesktopError),
    #[error("the window's Tauri app failed: {0}")]
    Tauri(#[from] tauri::Error),
}

fn main() -> ExitCode {
    let args = WindowArgs::parse();
    let config =
        match tokentray::cli::load_config_for(args.data_dir.as_deref(), args.config.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("tokentray-window: {e:#}");
                return ExitCode::from(1);
            }
        };
    match run(config, args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tokentray-window: {e}");
            ExitCode::from(1)
        }
    }
}

const LABEL: &str = "main";

/// The event the page listens to (`tokentray://changed`).
const CHANGED: &str = "tokentray://changed";

#[derive(Debug, Clone, Serialize)]
struct Changed {
    /// `data` (new data committed) or `day` (the local date changed).
    reason: String,
}

fn run(config: Config, args: WindowArgs) -> Result<ExitCode, WindowError> {
    init_logging();
    let mut listen = config.listen.clone();
    args.listen.apply(&mut listen);
    let endpoints = Endpoints::from_listen(&listen);
    let shared =
        Arc::new(Shared::new(&config, config.data_dir().map_err(DesktopError::from)?, endpoints));
    let app = tauri::Builder::default()
        .manage(shared)
        .invoke_handler(tauri::generate_handler![
            commands::dashboard,
            commands::set_budgets,
            commands::setup_claude_code,
            commands::setup_statusline,
            commands::locale,
            commands::money_style,
            commands::activity,
            commands::forward_status,
            commands::set_forward_enabled,
            commands::save_forward_headers
        ])
        .setup(|app| {
            // Errors returned from here make Tauri panic: report them and exit instead.
            match build(app.handle()) {
                Ok(()) => follow_tray(app.handle().clone()),
                Err(e) => {
                    eprintln!("tokentray-window: cannot open the dashboard window: {e}");
                    app.handle().exit(1);
                }
            }
            Ok(())
        })
        .build(tauri::generate_context!())?;
    // Closing the window closes the last one: Tauri then exits the event loop.
    let code = app.run_return(|_app, event| {
        if let RunEvent::WindowEvent { event: WindowEvent::Destroyed, .. } = event {
            // Tests wait for this line; users see it with the other logs.
            tracing::info!("window closed");
        }
    });
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

fn build(app: &AppHandle) -> Result<(), WindowError> {
    WebviewWindowBuilder::new(app, LABEL, WebviewUrl::App("index.html".into()))
        .title("tokentray")
        .inner_size(420.0, 640.0)
        .min_inner_size(360.0, 420.0)
        .build()?;
    tracing::info!("window opened");
    Ok(())
}

/// Follows the tray's lines on stdin until it closes them (Quit, or the tray died).
fn follow_tray(app: AppHandle) {
    let spawned = std::thread::Builder::new().name("tokentray-tray-link".into()).spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let mut words = line.split_whitespace();
            match words.next() {
                Some("show") => show(&app),
                Some("changed") => {
                    let reason = words.next().unwrap_or("data").to_string();
                    if let Err(e) =
                        app.emit_to(EventTarget::webview_window(LABEL), CHANGED, Changed { reason })
                    {
                        tracing::warn!("cannot notify the page: {e}");
                    }
                }
                _ => {}
            }
        }
        app.exit(0);
    });
    if let Err(e) = spawned {
        tracing::warn!("cannot follow the tray: {e}");
    }
}

fn show(app: &AppHandle) {
    if let Some(w) = app.get_webview_window(LABEL) {
        let _ = w.unminimize();
        let results = [w.show(), w.set_focus()];
        for r in results {
            if let Err(e) = r {
                tracing::warn!("cannot bring the window to the front: {e}");
            }
        }
    }
}
