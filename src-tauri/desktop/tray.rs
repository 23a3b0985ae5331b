//! The tray icon: today's spend next to it, the menu, and what the menu does.
//!
//! On Linux the item is a StatusNotifierItem with a dbusmenu (tray-icon over
//! libayatana-appindicator, as in Tauri). Its tooltip is not shown there, so the spend goes in
//! the title, which panels show as a label next to the icon (`XAyatanaLabel`); macOS and Windows
//! get the same text as tooltip.
//!
//! The icon and its menu items belong to the event loop's thread. Everything else (the engine's
//! tasks, the menu's clicks, a second launch) reaches them as a [`TrayEvent`] through a
//! [`TrayHandle`], which wakes the loop (the loop itself never polls).

use std::sync::Arc;

use tokentray_core::budget::{tomorrow_start, AlertState};
use tokentray_core::query::format::{count, usd, usd_short};
use tokentray_core::query::report::Figures;
use tray_icon::menu::{CheckMenuItem, Menu, MenuEvent, MenuId, MenuItem, PredefinedMenuItem};
use tray_icon::{Icon, TrayIcon, TrayIconBuilder};

use super::autostart::LoginEntry;
use super::engine::EngineStatus;
use super::event_loop::Sender;
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

/// What the event loop is asked to do.
#[derive(Debug)]
pub enum TrayEvent {
    /// Today's figures, and whether alerts are paused.
    Today(Today, bool),
    /// The history could not be read.
    ReadError(String),
    /// The forwarding checkbox's state.
    Forward(TrayForward),
    /// A menu entry was clicked.
    Menu(MenuId),
    /// Another launch handed over: show the window.
    OpenWindow,
    /// Quit (a signal, a session logout).
    Quit,
}

/// Sends [`TrayEvent`]s to the event loop from any thread.
#[derive(Clone)]
pub struct TrayHandle(Sender);

impl TrayHandle {
    pub fn new(sender: Sender) -> TrayHandle {
        TrayHandle(sender)
    }

    pub fn show(&self, today: Today, alerts_paused: bool) {
        self.send(TrayEvent::Today(today, alerts_paused));
    }

    pub fn show_error(&self, error: &DesktopError) {
        self.send(TrayEvent::ReadError(error.to_string()));
    }

    pub fn show_forward(&self, state: TrayForward) {
        self.send(TrayEvent::Forward(state));
    }

    pub fn open_window(&self) {
        self.send(TrayEvent::OpenWindow);
    }

    pub fn quit(&self) {
        self.send(TrayEvent::Quit);
    }

    /// Routes menu clicks into the event loop (the callback runs on whatever thread the
    /// platform's menu code calls it from).
    pub fn follow_menu(&self) {
        let handle = self.clone();
        MenuEvent::set_event_handler(Some(move |event: MenuEvent| {
            handle.send(TrayEvent::Menu(event.id))
        }));
    }

    /// Whether the event loop has ended.
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    fn send(&self, event: TrayEvent) {
        self.0.send(event);
    }
}

/// What the menu's entries act on.
pub struct MenuContext {
    pub launcher: Arc<Launcher>,
    pub shared: Arc<Shared>,
    /// `None` when the platform has no login entry we can write.
    pub login: Option<LoginEntry>,
}

/// The icon and the menu entries that change after start. Lives on the event loop's thread.
pub struct Tray {
    icon: TrayIcon,
    info: MenuItem,
    forward: CheckMenuItem,
    autostart: CheckMenuItem,
    pause: CheckMenuItem,
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
        Today {
            cost_usd: f.cost_usd,
            sessions: f.sessions,
            tokens: f.tokens.total,
            daily_limit_usd,
        }
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
        let sessions = if self.sessions == 1.0 {
            "1 session".to_string()
        } else {
            format!("{} sessions", count(self.sessions))
        };
        let tokens = if self.tokens == 1.0 {
            "1 token".to_string()
        } else {
            format!("{} tokens", count(self.tokens))
        };
        format!("Today: {} · {sessions} · {tokens}", usd(self.cost_usd))
    }
}

impl Tray {
    /// Creates the icon and its menu. Call on the event loop's thread, after the loop exists.
    pub fn build(status: &EngineStatus, login: Option<&LoginEntry>) -> Result<Tray, DesktopError> {
        let open = MenuItem::with_id(ID_OPEN, "Open dashboard", true, None);
        let info = MenuItem::with_id(ID_INFO, "Today: …", false, None);
        // Enabled once `[forward] endpoint` is set (see `show_forward`, run right after start and
        // then every few seconds, since `tokentray forward setup` may run at any time).
        let forward = CheckMenuItem::with_id(ID_FORWARD, "Forward to team", false, false, None);
        let autostart_on = login.map(|l| l.is_enabled()).transpose().unwrap_or_else(|e| {
            tracing::warn!("cannot read the start-at-login state: {e}");
            None
        });
        let autostart = CheckMenuItem::with_id(
            ID_AUTOSTART,
            "Start at login",
            login.is_some(),
            autostart_on.unwrap_or(false),
            None,
        );
        // Budget alerts are evaluated by the engine: nothing to pause when another program holds
        // the ports (its own evaluator, if any, follows the same pause in the database).
        let engine_running = status.problem().is_none();
        let pause = CheckMenuItem::with_id(ID_PAUSE, "Pause alerts", engine_running, false, None);
        let quit = MenuItem::with_id(ID_QUIT, "Quit", true, None);

        let menu = Menu::new();
        let menu_error =
            |e: tray_icon::menu::Error| DesktopError::Tray(format!("cannot build the menu: {e}"));
        menu.append(&open).map_err(menu_error)?;
        menu.append(&info).map_err(menu_error)?;
        if let Some(problem) = status.problem() {
            menu.append(&MenuItem::with_id(ID_STATUS, problem, false, None)).map_err(menu_error)?;
        }
        menu.append_items(&[
            &PredefinedMenuItem::separator(),
            &forward,
            &autostart,
            &pause,
            &PredefinedMenuItem::separator(),
            &quit,
        ])
        .map_err(menu_error)?;

        let problem_title = status.problem_title();
        let icon = TrayIconBuilder::new()
            .with_id("tokentray")
            .with_icon(icon()?)
            .with_title(problem_title.unwrap_or("…"))
            .with_tooltip("tokentray")
            .with_menu(Box::new(menu))
            .with_menu_on_left_click(true)
            .build()
            .map_err(|e| DesktopError::Tray(format!("cannot create the tray icon: {e}")))?;
        Ok(Tray { icon, info, forward, autostart, pause, problem_title })
    }

    /// Applies one event; returns `true` for Quit.
    pub fn handle(&mut self, event: TrayEvent, ctx: &MenuContext) -> bool {
        match event {
            TrayEvent::Today(today, paused) => self.show(&today, paused),
            TrayEvent::ReadError(error) => {
                self.info.set_text(format!("Cannot read the history: {error}"))
            }
            TrayEvent::Forward(state) => self.show_forward(&state),
            TrayEvent::Menu(id) => return self.on_menu(id.as_ref(), ctx),
            TrayEvent::OpenWindow => ctx.launcher.open_logged(),
            TrayEvent::Quit => return true,
        }
        false
    }

    /// Shows today's figures: label (or the engine problem), info row, tooltip, and whether
    /// alerts are paused.
    fn show(&self, today: &Today, alerts_paused: bool) {
        let title = self.problem_title.map(str::to_string).unwrap_or_else(|| today.title());
        let line = today.line();
        self.icon.set_title(Some(&title));
        if let Err(e) = self.icon.set_tooltip(Some(format!("tokentray — {line}"))) {
            tracing::warn!("cannot update the tray: {e}");
        }
        self.info.set_text(&line);
        self.pause.set_checked(alerts_paused);
    }

    /// Shows the forwarding state on its checkbox: enabled when set up, checked when on, the
    /// pause reason in the label. Sent only when it changed (each change re-sends the menu's
    /// layout over D-Bus), and after a click, when GTK has already toggled the box.
    fn show_forward(&self, state: &TrayForward) {
        self.forward.set_enabled(state.configured);
        self.forward.set_checked(state.enabled);
        self.forward.set_text(&state.label);
    }

    fn on_menu(&mut self, id: &str, ctx: &MenuContext) -> bool {
        match id {
            ID_OPEN => {
                if let Err(e) = ctx.launcher.open() {
                    tracing::warn!("cannot open the dashboard window: {e}");
                    // Where the click was, until the next refresh of the figures.
                    self.info.set_text(format!("Cannot open the dashboard: {e}"));
                }
            }
            ID_FORWARD => {
                match ctx.shared.forward.toggle() {
                    // The open window shows the switch in its forwarding section.
                    Ok(_) => ctx.launcher.changed("forward"),
                    Err(e) => tracing::warn!("cannot turn forwarding on or off: {e}"),
                }
                match ctx.shared.forward.tray() {
                    Ok(state) => self.show_forward(&state),
                    Err(e) => tracing::warn!("cannot read the forwarding state: {e}"),
                }
            }
            ID_AUTOSTART => {
                let Some(login) = &ctx.login else { return false };
                if let Err(e) = login.toggle() {
                    tracing::warn!("{e}");
                }
                // The checkbox follows the real login entry, whatever the click did to it.
                match login.is_enabled() {
                    Ok(on) => self.autostart.set_checked(on),
                    Err(e) => tracing::warn!("cannot read the start-at-login state: {e}"),
                }
            }
            ID_PAUSE => match toggle_pause(&ctx.shared) {
                Ok(paused) => {
                    self.pause.set_checked(paused);
                    // The open window shows the pause in its budget section.
                    ctx.launcher.changed("pause");
                }
                Err(e) => {
                    tracing::warn!("cannot pause or resume alerts: {e}");
                    self.pause.set_checked(!self.pause.is_checked());
                }
            },
            ID_QUIT => {
                tracing::info!("quit from the tray");
                return true;
            }
            _ => {}
        }
        false
    }
}

/// The tray icon's pixels (tray-icon takes RGBA).
fn icon() -> Result<Icon, DesktopError> {
    let bad = |e: String| DesktopError::Tray(format!("the built-in icon cannot be decoded: {e}"));
    let mut decoder = png::Decoder::new(std::io::Cursor::new(ICON));
    decoder.set_transformations(
        png::Transformations::normalize_to_color8() | png::Transformations::ALPHA,
    );
    let mut reader = decoder.read_info().map_err(|e| bad(e.to_string()))?;
    let mut rgba = vec![0; reader.output_buffer_size().ok_or_else(|| bad("too large".into()))?];
    let frame = reader.next_frame(&mut rgba).map_err(|e| bad(e.to_string()))?;
    if frame.color_type != png::ColorType::Rgba {
        return Err(bad(format!("{:?} pixels, not RGBA", frame.color_type)));
    }
    rgba.truncate(frame.buffer_size());
    Icon::from_rgba(rgba, frame.width, frame.height).map_err(|e| bad(e.to_string()))
}

/// Pauses budget alerts until tomorrow (local midnight), or resumes them if they are paused.
/// The pause lives in the database, so `tokentray budget status` and a `serve` on the same data
/// directory see it. Returns whether alerts are now paused.
fn toggle_pause(shared: &Shared) -> Result<bool, DesktopError> {
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
        assert_eq!(
            Today { daily_limit_usd: Some(20.0), cost_usd: 16.12, ..t.clone() }.title(),
            "$16.12 / $20"
        );
        assert_eq!(Today { daily_limit_usd: Some(12.5), ..t.clone() }.title(), "$3.42 / $12.50");
        assert_eq!(t.line(), "Today: $3.42 · 4 sessions · 1.2M tokens");
        let one = Today { cost_usd: 0.004, sessions: 1.0, tokens: 950.0, daily_limit_usd: None };
        assert_eq!(one.line(), "Today: $0.0040 · 1 session · 950 tokens");
        assert_eq!(
            Today { cost_usd: 0.0, sessions: 0.0, tokens: 0.0, daily_limit_usd: None }.title(),
            "$0.00"
        );
    }
}
