//! The tray icon: today's spend next to it, and the menu.
//!
//! On Linux the item is a StatusNotifierItem with a dbusmenu (libayatana-appindicator). Its
//! tooltip is not shown there, so the spend goes in the title, which panels show as a label next
//! to the icon (`XAyatanaLabel`); macOS and Windows get the same text as tooltip.

use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuEvent, MenuItem, PredefinedMenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Manager, Wry};
use tauri_plugin_autostart::ManagerExt;
use tokentray_core::budget::{tomorrow_start, AlertState};
use tokentray_core::query::format::{count, usd, usd_short};
use tokentray_core::query::report::Figures;

use std::sync::{Arc, Mutex};

use super::engine::EngineStatus;
use super::forward::TrayForward;
use super::launcher::Launcher;
use super::{DesktopError, Shared};

pub const ID_OPEN: &str = "open";
pub const ID_INFO: &str = "info";
pub const ID_STATUS: &str = "status";
pub const ID_FORWARD: &str = "forward";
pub const ID_AUTOSTART: &str = "autostart";
pub const ID_PAUSE: &str = "pause-alerts";
pub const ID_QUIT: &str = "quit";

const ICON: &[u8] = include_bytes!("../../icons/tray.png");

/// Handles to what changes after start. Cheap to clone (Tauri's items are shared handles).
#[derive(Clone)]
pub struct Tray {
    icon: TrayIcon<Wry>,
    info: MenuItem<Wry>,
    forward: CheckMenuItem<Wry>,
    /// What the forward checkbox last showed, so the periodic check touches the menu only when
    /// something changed (each change re-sends the layout over D-Bus).
    forward_shown: Arc<Mutex<Option<TrayForward>>>,
    autostart: CheckMenuItem<Wry>,
    pause: CheckMenuItem<Wry>,
    /// Shown instead of the spend while the engine is not running.
    problem_title: Option<&'static str>,
}

/// Today's headline figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Today {
    pub cost_usd: f64,
    pub sessions: f64,
    pub tokens: f64,
    /// The daily budget for all models, when one is set.
    pub daily_limit_usd: Option<f64>,
}

impl Today {
    pub fn of(f: &Figures, daily_limit_usd: Option<f64>) -> Today {
        Today { cost_usd: f.cost_usd, sessions: f.sessions, tokens: f.tokens.total, daily_limit_usd }
    }

    /// The label next to the icon: `$3.42`, or `$16.12 / $20` with a daily budget.
    pub fn title(&self) -> String {
        match self.daily_limit_usd {
            Some(limit) => format!("{} / {}", usd(self.cost_usd), usd_short(limit)),
            None => usd(self.cost_usd),
        }
    }

    /// The menu's info row: `Today: $3.42 · 4 sessions · 1.2M tokens`.
    pub fn line(&self) -> String {
        let sessions = if self.sessions == 1.0 { "1 session".to_string() } else { format!("{} sessions", count(self.sessions)) };
        let tokens = if self.tokens == 1.0 { "1 token".to_string() } else { format!("{} tokens", count(self.tokens)) };
        format!("Today: {} · {sessions} · {tokens}", usd(self.cost_usd))
    }
}

impl Tray {
    pub fn build(app: &AppHandle, status: &EngineStatus) -> Result<Tray, DesktopError> {
        let open = MenuItem::with_id(app, ID_OPEN, "Open dashboard", true, None::<&str>)?;
        let info = MenuItem::with_id(app, ID_INFO, "Today: …", false, None::<&str>)?;
        // Enabled once `[forward] endpoint` is set (see `show_forward`, run right after start and
        // then every few seconds, since `tokentray forward setup` may run at any time).
        let forward = CheckMenuItem::with_id(app, ID_FORWARD, "Forward to team", false, false, None::<&str>)?;
        let autostart_on = app.autolaunch().is_enabled().unwrap_or_else(|e| {
            tracing::warn!("cannot read the start-at-login state: {e}");
            false
        });
        let autostart = CheckMenuItem::with_id(app, ID_AUTOSTART, "Start at login", true, autostart_on, None::<&str>)?;
        // Budget alerts are evaluated by the engine: nothing to pause when another program holds
        // the ports (its own evaluator, if any, follows the same pause in the database).
        let engine_running = status.problem().is_none();
        let pause = CheckMenuItem::with_id(app, ID_PAUSE, "Pause alerts", engine_running, false, None::<&str>)?;
        let quit = MenuItem::with_id(app, ID_QUIT, "Quit", true, None::<&str>)?;
        let sep1 = PredefinedMenuItem::separator(app)?;
        let sep2 = PredefinedMenuItem::separator(app)?;

        let menu = Menu::new(app)?;
        menu.append(&open)?;
        menu.append(&info)?;
        if let Some(problem) = status.problem() {
            menu.append(&MenuItem::with_id(app, ID_STATUS, problem, false, None::<&str>)?)?;
        }
        menu.append_items(&[&sep1, &forward, &autostart, &pause, &sep2, &quit])?;

        let problem_title = status.problem_title();
        let icon = TrayIconBuilder::with_id("tokentray")
            .icon(Image::from_bytes(ICON)?)
            .title(problem_title.unwrap_or("…"))
            .tooltip("tokentray")
            .menu(&menu)
            .show_menu_on_left_click(true)
            .on_menu_event(on_menu_event)
            .build(app)?;
        Ok(Tray { icon, info, forward, forward_shown: Arc::new(Mutex::new(None)), autostart, pause, problem_title })
    }

    /// Shows today's figures: label (or the engine problem), info row, tooltip, and whether
    /// alerts are paused.
    pub fn show(&self, today: &Today, alerts_paused: bool) {
        let title = self.problem_title.map(str::to_string).unwrap_or_else(|| today.title());
        let line = today.line();
        let results = [
            self.icon.set_title(Some(&title)),
            self.icon.set_tooltip(Some(format!("tokentray — {line}"))),
            self.info.set_text(&line),
            self.pause.set_checked(alerts_paused),
        ];
        for r in results {
            if let Err(e) = r {
                tracing::warn!("cannot update the tray: {e}");
            }
        }
    }

    /// Shows a read error where the figures would be (the label keeps its last value).
    pub fn show_error(&self, error: &DesktopError) {
        if let Err(e) = self.info.set_text(format!("Cannot read the history: {error}")) {
            tracing::warn!("cannot update the tray: {e}");
        }
    }

    /// Shows the forwarding state on its checkbox: enabled when set up, checked when on, the
    /// pause reason in the label. `force` after a click, when GTK has already toggled the box.
    pub fn show_forward(&self, state: &TrayForward, force: bool) {
        let Ok(mut shown) = self.forward_shown.lock() else { return };
        if !force && shown.as_ref() == Some(state) {
            return;
        }
        let results = [self.forward.set_enabled(state.configured), self.forward.set_checked(state.enabled), self.forward.set_text(&state.label)];
        for r in results {
            if let Err(e) = r {
                tracing::warn!("cannot update the tray: {e}");
            }
        }
        *shown = Some(state.clone());
    }

    /// Sets the checkbox from the real login entry, whatever the click did to it.
    fn sync_autostart(&self, app: &AppHandle) {
        match app.autolaunch().is_enabled() {
            Ok(on) => {
                if let Err(e) = self.autostart.set_checked(on) {
                    tracing::warn!("cannot update the tray: {e}");
                }
            }
            Err(e) => tracing::warn!("cannot read the start-at-login state: {e}"),
        }
    }
}

fn on_menu_event(app: &AppHandle, event: MenuEvent) {
    match event.id().as_ref() {
        ID_OPEN => {
            if let Some(launcher) = app.try_state::<Arc<Launcher>>() {
                launcher.open_logged();
            }
        }
        ID_FORWARD => {
            let Some(shared) = app.try_state::<Arc<Shared>>() else { return };
            match shared.forward.toggle() {
                // The open window shows the switch in its forwarding section.
                Ok(_) => {
                    if let Some(launcher) = app.try_state::<Arc<Launcher>>() {
                        launcher.changed("forward");
                    }
                }
                Err(e) => tracing::warn!("cannot turn forwarding on or off: {e}"),
            }
            match (shared.forward.tray(), app.try_state::<Tray>()) {
                (Ok(state), Some(tray)) => tray.show_forward(&state, true),
                (Err(e), _) => tracing::warn!("cannot read the forwarding state: {e}"),
                _ => {}
            }
        }
        ID_AUTOSTART => {
            if let Err(e) = toggle_autostart(app) {
                tracing::warn!("{e}");
            }
            if let Some(tray) = app.try_state::<Tray>() {
                tray.sync_autostart(app);
            }
        }
        ID_PAUSE => {
            let paused = toggle_pause(app);
            if let (Some(tray), Ok(paused)) = (app.try_state::<Tray>(), &paused) {
                if let Err(e) = tray.pause.set_checked(*paused) {
                    tracing::warn!("cannot update the tray: {e}");
                }
            }
            match paused {
                // The open window shows the pause in its budget section.
                Ok(_) => {
                    if let Some(launcher) = app.try_state::<Arc<Launcher>>() {
                        launcher.changed("pause");
                    }
                }
                Err(e) => tracing::warn!("cannot pause or resume alerts: {e}"),
            }
        }
        ID_QUIT => {
            tracing::info!("quit from the tray");
            app.exit(0);
        }
        _ => {}
    }
}

/// Flips the login entry from its real state (not from the checkbox, which GTK already toggled).
fn toggle_autostart(app: &AppHandle) -> Result<(), DesktopError> {
    let manager = app.autolaunch();
    let on = manager.is_enabled().map_err(|e| DesktopError::Autostart(e.to_string()))?;
    let result = if on { manager.disable() } else { manager.enable() };
    result.map_err(|e| DesktopError::Autostart(e.to_string()))?;
    tracing::info!(enabled = !on, "start at login changed");
    Ok(())
}

/// Pauses budget alerts until tomorrow (local midnight), or resumes them if they are paused.
/// The pause lives in the database, so `tokentray budget status` and a `serve` on the same data
/// directory see it. Returns whether alerts are now paused.
fn toggle_pause(app: &AppHandle) -> Result<bool, DesktopError> {
    let shared = app.try_state::<Arc<Shared>>().ok_or_else(|| DesktopError::Window("the app is not set up yet".into()))?;
    let state = AlertState::open_dir(shared.data_dir())?;
    let now = chrono::Local::now();
    let paused = state.is_paused(now.with_timezone(&chrono::Utc))?;
    if paused {
        state.pause_until(None)?;
        tracing::info!("budget alerts resumed");
    } else {
        let until = tomorrow_start(&now);
        state.pause_until(Some(until))?;
        tracing::info!(until = %until.with_timezone(&chrono::Local).to_rfc3339(), "budget alerts paused");
    }
    Ok(!paused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_row_reads_like_the_issue() {
        let t = Today { cost_usd: 3.42, sessions: 4.0, tokens: 1_234_567.0, daily_limit_usd: None };
        assert_eq!(t.title(), "$3.42");
        assert_eq!(Today { daily_limit_usd: Some(20.0), cost_usd: 16.12, ..t.clone() }.title(), "$16.12 / $20");
        assert_eq!(Today { daily_limit_usd: Some(12.5), ..t.clone() }.title(), "$3.42 / $12.50");
        assert_eq!(t.line(), "Today: $3.42 · 4 sessions · 1.2M tokens");
        let one = Today { cost_usd: 0.004, sessions: 1.0, tokens: 950.0, daily_limit_usd: None };
        assert_eq!(one.line(), "Today: $0.0040 · 1 session · 950 tokens");
        assert_eq!(Today { cost_usd: 0.0, sessions: 0.0, tokens: 0.0, daily_limit_usd: None }.title(), "$0.00");
    }
}
