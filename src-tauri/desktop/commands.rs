//! What the window's JavaScript may call. Each command is a thin call into the core, run on a
//! blocking thread (SQLite), with errors as readable strings.

use std::sync::Arc;

use chrono::Local;
use tokentray_core::dashboard::{self, Dashboard};

use super::{DesktopError, Shared};

/// Everything the window shows (`window.__TAURI__.core.invoke('dashboard')`).
#[tauri::command]
pub async fn dashboard(shared: tauri::State<'_, Arc<Shared>>) -> Result<Dashboard, DesktopError> {
    let shared = Arc::clone(&shared);
    tauri::async_runtime::spawn_blocking(move || shared.read(|reader| dashboard::build(reader, Local::now(), &shared.endpoints, &shared.budgets.current())))
        .await
        .map_err(|e| DesktopError::Interrupted(e.to_string()))?
}
