//! Errors of the desktop shell. Commands hand them to the window as plain strings (the UI shows
//! `Could not load the dashboard: <this text>`), so every message says what failed in words a
//! user can act on.

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
    #[error("the desktop shell failed: {0}")]
    Tauri(#[from] tauri::Error),
    #[error("the query was interrupted: {0}")]
    Interrupted(String),
    #[error("start at login: {0}")]
    Autostart(String),
    #[error("dashboard window: {0}")]
    Window(String),
}

/// Tauri sends a command's error to JavaScript as its JSON form: a readable string here.
impl Serialize for DesktopError {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}
