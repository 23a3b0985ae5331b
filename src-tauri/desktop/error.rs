//! Errors of the desktop app. The window's commands hand them to the page as plain strings (the
//! UI shows `Could not load the dashboard: <this text>`), so every message says what failed in
//! words a user can act on.

use serde::{Serialize, Serializer};
use tokentray_core::budget::BudgetError;
use tokentray_core::config::ConfigError;
use tokentray_core::forward::ForwardError;
use tokentray_core::setup::SetupError;
use tokentray_core::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DesktopError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Budget(#[from] BudgetError),
    #[error("{0}")]
    Setup(#[from] SetupError),
    /// Never carries a header value: `tokentray_core::forward` names items, not secrets.
    #[error("{0}")]
    Forward(#[from] ForwardError),
    #[error("cannot start the engine's async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot open the display (the tray needs a desktop session): {0}; on a headless machine run `tokentray serve` (the engine, with the dashboard at http://127.0.0.1:8889/)")]
    Display(String),
    #[error("tray icon: {0}")]
    Tray(String),
    #[error("the query was interrupted: {0}")]
    Interrupted(String),
    #[error("start at login: {0}")]
    Autostart(String),
    #[error("dashboard window: {0}")]
    Window(String),
}

/// A Tauri command's error reaches JavaScript as its JSON form: a readable string here.
impl Serialize for DesktopError {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}
