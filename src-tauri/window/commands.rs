//! What the window's JavaScript may call. Each command is a thin call into the core, run on a
//! blocking thread (SQLite), with errors as readable strings.

use std::sync::Arc;

use chrono::Local;
use serde::Deserialize;
use tokentray_core::budget::{edit, BudgetError, BudgetPeriod};
use tokentray_core::config::BudgetLimit;
use tokentray_core::dashboard::activity::{self, ActivityRow};
use tokentray_core::dashboard::{self, Dashboard};
use tokentray_core::setup::{self, Protocol};

use tokentray::desktop::forward::ForwardView;
use tokentray::desktop::{DesktopError, Shared};

/// Everything the window shows (`window.__TAURI__.core.invoke('dashboard')`).
#[tauri::command]
pub async fn dashboard(shared: tauri::State<'_, Arc<Shared>>) -> Result<Dashboard, DesktopError> {
    let shared = Arc::clone(&shared);
    tauri::async_runtime::spawn_blocking(move || {
        shared.read(|reader| {
            dashboard::build(reader, Local::now(), &shared.endpoints, &shared.budgets.current())
        })
    })
    .await
    .map_err(|e| DesktopError::Interrupted(e.to_string()))?
}

/// The limits the window's budget settings edit: USD per period for all models; `null` (an
/// empty field) removes that budget.
#[derive(Debug, Deserialize)]
pub struct BudgetLimits {
    pub daily: Option<f64>,
    pub weekly: Option<f64>,
    pub monthly: Option<f64>,
}

/// Writes the limits to the config file, as `tokentray budget set/unset` would (comments and
/// other keys kept; thresholds a budget already had are kept, new ones get 50/80/100 %). The
/// tray's evaluator and every view follow the file.
#[tauri::command]
pub async fn set_budgets(
    shared: tauri::State<'_, Arc<Shared>>,
    limits: BudgetLimits,
) -> Result<(), DesktopError> {
    let shared = Arc::clone(&shared);
    tauri::async_runtime::spawn_blocking(move || {
        let file = shared.budgets.file().ok_or_else(|| DesktopError::Window("no config file to save budgets in".into()))?;
        let current = shared.budgets.current();
        for (period, limit, had) in [
            (BudgetPeriod::Daily, limits.daily, &current.daily),
            (BudgetPeriod::Weekly, limits.weekly, &current.weekly),
            (BudgetPeriod::Monthly, limits.monthly, &current.monthly),
        ] {
            match limit {
                Some(usd) => {
                    let thresholds = had.as_ref().map(|h| h.thresholds.clone()).unwrap_or_default();
                    let limit = BudgetLimit::new(usd, &thresholds).map_err(|e| BudgetError::Invalid(format!("{} budget: {e}", period.name())))?;
                    edit::set_budget(file, period, edit::Scope::All, &limit)?;
                }
                None => {
                    edit::unset_budget(file, period, edit::Scope::All)?;
                }
            }
        }
        tracing::info!(daily = ?limits.daily, weekly = ?limits.weekly, monthly = ?limits.monthly, "budgets saved from the window");
        Ok(())
    })
    .await
    .map_err(|e| DesktopError::Interrupted(e.to_string()))?
}

/// The empty state's "Set up Claude Code" button: what `tokentray setup` does, for the ports
/// this engine actually listens on. Returns the sentence to show.
#[tauri::command]
pub async fn setup_claude_code(
    shared: tauri::State<'_, Arc<Shared>>,
) -> Result<String, DesktopError> {
    let shared = Arc::clone(&shared);
    tauri::async_runtime::spawn_blocking(move || setup_claude(&shared, false))
        .await
        .map_err(|e| DesktopError::Interrupted(e.to_string()))?
}

/// The Plan usage card's "Show plan limits" button: what `tokentray setup --statusline` does
/// (telemetry as `setup`, and `tokentray statusline` as Claude Code's status line, which reports
/// the plan's 5-hour and 7-day usage). Returns the sentence to show.
#[tauri::command]
pub async fn setup_statusline(
    shared: tauri::State<'_, Arc<Shared>>,
) -> Result<String, DesktopError> {
    let shared = Arc::clone(&shared);
    tauri::async_runtime::spawn_blocking(move || setup_claude(&shared, true))
        .await
        .map_err(|e| DesktopError::Interrupted(e.to_string()))?
}

/// `tokentray setup` (with `--statusline`) for the ports this engine listens on, keeping the
/// protocol an earlier setup chose.
fn setup_claude(shared: &Shared, statusline: bool) -> Result<String, DesktopError> {
    let path = setup::user_settings_path()?;
    let protocol = setup::current_protocol(&path).unwrap_or(Protocol::Grpc);
    let env = setup::telemetry_env(&shared.endpoints, protocol);
    let mut plan = setup::plan(&path, &env, &setup::managed_settings_paths())?;
    if statusline {
        plan = setup::with_statusline(plan, &statusline_command(shared.data_dir())?)?;
    }
    setup::apply(&plan)?;
    tracing::info!(settings = %path.display(), changed = plan.changed_keys.len(), statusline, "Claude Code set up from the window");
    let mut said = setup::describe(&plan, &env);
    if statusline {
        said.push_str(" Its status line now reports the plan's usage here: it shows after Claude Code's next reply.");
    }
    Ok(said)
}

/// `tokentray --data-dir D statusline`, with the `tokentray` installed next to this window
/// program (the statusline runs outside the app, so it must name the CLI, not the window).
fn statusline_command(data_dir: &std::path::Path) -> Result<String, DesktopError> {
    let exe = std::env::current_exe()
        .map_err(|e| DesktopError::Window(format!("cannot find this program: {e}")))?;
    let cli = exe.with_file_name("tokentray");
    if !cli.is_file() {
        return Err(DesktopError::Window(format!(
            "cannot find the tokentray command next to {}; run `tokentray setup --statusline` instead",
            exe.display()
        )));
    }
    Ok(format!(
        "{} --data-dir {} statusline",
        setup::shell_quote(&cli.to_string_lossy()),
        setup::shell_quote(&data_dir.to_string_lossy())
    ))
}

/// The user's locale for money, numbers and dates, as a BCP 47 tag (`de-DE`) from
/// `LC_ALL` / `LC_MONETARY` / `LANG`; `None` for the C locale. WebKit's own default follows
/// the process's C library locale, which is "C" where that locale is not installed.
#[tauri::command]
pub fn locale() -> Option<String> {
    tokentray_core::query::format::user_locale()
}

/// How amounts are written in the user's locale: the same style the tray label, the statusline,
/// alerts and `tokentray report` use, so the window's `1,75 $` is theirs.
#[tauri::command]
pub fn money_style() -> tokentray_core::query::format::MoneyStyle {
    tokentray_core::query::format::MoneyStyle::user()
}

/// The Activity list: recent events, optionally of one session and one kind (`api_request`, …).
#[tauri::command]
pub async fn activity(
    shared: tauri::State<'_, Arc<Shared>>,
    session: Option<String>,
    kind: Option<String>,
) -> Result<Vec<ActivityRow>, DesktopError> {
    let shared = Arc::clone(&shared);
    let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let (session, kind) = (nonempty(session), nonempty(kind));
    tauri::async_runtime::spawn_blocking(move || {
        shared.read(|reader| activity::activity(reader, session.as_deref(), kind.as_deref(), 100))
    })
    .await
    .map_err(|e| DesktopError::Interrupted(e.to_string()))?
}

/// The "Forward to team" section: status in words, switch, endpoint, queue, and with
/// `with_headers` the stored headers, masked (read from the keychain only when asked).
#[tauri::command]
pub async fn forward_status(
    shared: tauri::State<'_, Arc<Shared>>,
    with_headers: Option<bool>,
) -> Result<ForwardView, DesktopError> {
    let shared = Arc::clone(&shared);
    tauri::async_runtime::spawn_blocking(move || shared.forward.view(with_headers.unwrap_or(false)))
        .await
        .map_err(|e| DesktopError::Interrupted(e.to_string()))?
}

/// The section's on/off switch (the same switch as the tray's checkbox and `tokentray forward
/// on|off`). Returns the section's new state.
#[tauri::command]
pub async fn set_forward_enabled(
    shared: tauri::State<'_, Arc<Shared>>,
    on: bool,
) -> Result<ForwardView, DesktopError> {
    let shared = Arc::clone(&shared);
    tauri::async_runtime::spawn_blocking(move || {
        shared.forward.set_enabled(on)?;
        shared.forward.view(false)
    })
    .await
    .map_err(|e| DesktopError::Interrupted(e.to_string()))?
}

/// "Save headers": `OTEL_EXPORTER_OTLP_HEADERS`-style text into the keychain. Returns only the
/// masked names; the text is never logged nor sent back.
#[tauri::command]
pub async fn save_forward_headers(
    shared: tauri::State<'_, Arc<Shared>>,
    headers: String,
) -> Result<Vec<String>, DesktopError> {
    let shared = Arc::clone(&shared);
    tauri::async_runtime::spawn_blocking(move || shared.forward.save_headers(&headers))
        .await
        .map_err(|e| DesktopError::Interrupted(e.to_string()))?
}
