//! The tray icon: today's spend next to it, the menu, and what the menu does.
//!
//! On Linux the item is a StatusNotifierItem with a dbusmenu (tray-icon over
//! libayatana-appindicator, as in Tauri). Its tooltip is not shown there, so the spend goes in
//! the title, which panels show as a label next to the icon (`XAyatanaLabel`); macOS and Windows
//! get the same text as tooltip.
//!
//! The icon shows the state at a glance ([`IconState`]: normal, past a budget threshold, past
//! the limit, engine problem, alerts paused), drawn by `icons/generate.py` in two variants, for
//! dark and light panels ([`Panel`], from the desktop's color-scheme preference when the
//! freedesktop portal has one). It is replaced only when the state changes (each change writes a
//! PNG that the panel reloads).
//!
//! With no tray host on the desktop (no StatusNotifierWatcher, as on stock GNOME) the icon
//! cannot be seen: [`watch_host`] finds that out, and the app says so once (log and a desktop
//! notification), opens the window instead and does not turn on start-at-login.
//!
//! The icon and its menu items belong to the event loop's thread. Everything else (the engine's
//! tasks, the menu's clicks, a second launch) reaches them as a [`TrayEvent`] through a
//! [`TrayHandle`], which wakes the loop (the loop itself never polls).

use std::sync::Arc;
use std::time::Duration;

use tokentray_core::budget::{tomorrow_start, AlertState, BudgetStatus};
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

/// How long a missing tray host is waited for at start: a login session may start the panel a
/// moment after the apps in its autostart folder.
const HOST_GRACE: Duration = Duration::from_secs(6);

/// What the tray icon shows, most important first when several apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IconState {
    /// The engine is not running: a port is held by another program, or it failed to start.
    Problem,
    /// Budget alerts are paused (until tomorrow).
    Paused,
    /// A budget is at or past its limit.
    Over,
    /// A budget is past one of its alert thresholds.
    Warning,
    Normal,
}

/// The panel the icon sits on: the icon's edge contrasts with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Panel {
    /// A dark panel (GNOME's top bar; also assumed when the desktop states no preference):
    /// icons with a light edge.
    Dark,
    /// A light panel: icons with a dark edge.
    Light,
}

/// The PNG of one icon, as `icons/generate.py` drew it.
pub fn icon_png(state: IconState, panel: Panel) -> &'static [u8] {
    use IconState::*;
    match (state, panel) {
        (Normal, Panel::Dark) => include_bytes!("../../icons/tray-normal-dark.png"),
        (Normal, Panel::Light) => include_bytes!("../../icons/tray-normal-light.png"),
        (Warning, Panel::Dark) => include_bytes!("../../icons/tray-warning-dark.png"),
        (Warning, Panel::Light) => include_bytes!("../../icons/tray-warning-light.png"),
        (Over, Panel::Dark) => include_bytes!("../../icons/tray-over-dark.png"),
        (Over, Panel::Light) => include_bytes!("../../icons/tray-over-light.png"),
        (Problem, Panel::Dark) => include_bytes!("../../icons/tray-problem-dark.png"),
        (Problem, Panel::Light) => include_bytes!("../../icons/tray-problem-light.png"),
        (Paused, Panel::Dark) => include_bytes!("../../icons/tray-paused-dark.png"),
        (Paused, Panel::Light) => include_bytes!("../../icons/tray-paused-light.png"),
    }
}

/// Where today's spend stands against the budgets (every budget counts, not only the daily one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BudgetLevel {
    #[default]
    Under,
    /// Past an alert threshold of some budget.
    Warning,
    /// At or past the limit of some budget.
    Over,
}

impl BudgetLevel {
    pub fn of(status: &BudgetStatus) -> BudgetLevel {
        if status.budgets.iter().any(|b| b.over_limit()) {
            BudgetLevel::Over
        } else if status.budgets.iter().any(|b| b.highest_crossed.is_some()) {
            BudgetLevel::Warning
        } else {
            BudgetLevel::Under
        }
    }
}

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
    /// Whether the desktop has a tray host to show the icon (found out once, after start).
    Host(bool),
    /// The desktop's panel is light or dark (its color-scheme preference, read once at start).
    Panel(Panel),
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

/// Looks, off the event loop's thread, at what the desktop offers: the color-scheme preference
/// (sent as [`TrayEvent::Panel`] when it is light) and whether a tray host shows the icon, waiting
/// [`HOST_GRACE`] for one to appear. Without a host it logs and notifies once, then sends
/// [`TrayEvent::Host`]`(false)`, on which the loop opens the window.
pub fn watch_host(handle: &TrayHandle) {
    let sender = handle.clone();
    let spawned = std::thread::Builder::new().name("tokentray-tray-host".into()).spawn(move || {
        if session_bus::color_scheme() == Some(Panel::Light) {
            sender.send(TrayEvent::Panel(Panel::Light));
        }
        let host = session_bus::wait_for_host(HOST_GRACE);
        if !host {
            tracing::warn!(
                "no tray host on this desktop (nothing owns {} on the session bus): the tray icon \
                 cannot be shown, opening the dashboard window instead",
                session_bus::WATCHER
            );
            notify_no_host();
        }
        sender.send(TrayEvent::Host(host));
    });
    if let Err(e) = spawned {
        tracing::warn!("cannot look for a tray host: {e}");
        handle.send(TrayEvent::Host(true));
    }
}

/// The one notification a desktop without a tray host gets.
fn notify_no_host() {
    let mut n = notify_rust::Notification::new();
    n.appname(crate::alerts::desktop::APP_NAME)
        .summary(NO_HOST_SUMMARY)
        .body(NO_HOST_BODY)
        .icon("dialog-information");
    if let Err(e) = n.show() {
        tracing::warn!("cannot show a desktop notification: {e}");
    }
}

pub const NO_HOST_SUMMARY: &str = "tokentray: no tray on this desktop";
pub const NO_HOST_BODY: &str = "This desktop shows no tray icons (on GNOME, the \"AppIndicator \
and KStatusNotifierItem Support\" extension adds them). tokentray keeps receiving in the \
background; the dashboard window is open now, and running tokentray again opens it again.";

/// What the session bus says about the desktop (Linux; elsewhere there is always a tray).
#[cfg(target_os = "linux")]
mod session_bus {
    use std::time::{Duration, Instant};

    use gtk::gio;
    use gtk::glib::{self, ToVariant};

    use super::Panel;

    /// The tray host's registry: panels that show StatusNotifierItems own this name.
    pub const WATCHER: &str = "org.kde.StatusNotifierWatcher";
    const TIMEOUT_MS: i32 = 1000;

    fn call(
        bus: &gio::DBusConnection,
        dest: &str,
        path: &str,
        iface: &str,
        method: &str,
        args: glib::Variant,
    ) -> Option<glib::Variant> {
        bus.call_sync(
            Some(dest),
            path,
            iface,
            method,
            Some(&args),
            None,
            gio::DBusCallFlags::NONE,
            TIMEOUT_MS,
            gio::Cancellable::NONE,
        )
        .inspect_err(|e| tracing::debug!("{dest} {iface}.{method}: {e}"))
        .ok()
    }

    fn session() -> Option<gio::DBusConnection> {
        gio::bus_get_sync(gio::BusType::Session, gio::Cancellable::NONE)
            .inspect_err(|e| tracing::warn!("no session bus: {e}"))
            .ok()
    }

    /// `org.freedesktop.appearance color-scheme` from the settings portal: 1 prefers dark, 2
    /// light, 0 (no preference) and no portal are `None`.
    pub fn color_scheme() -> Option<Panel> {
        let bus = session()?;
        let mut value = call(
            &bus,
            "org.freedesktop.portal.Desktop",
            "/org/freedesktop/portal/desktop",
            "org.freedesktop.portal.Settings",
            "Read",
            ("org.freedesktop.appearance", "color-scheme").to_variant(),
        )?
        .try_child_value(0)?;
        // `Read` answers `v` holding a `v` holding the `u` (older portals one level less).
        while let Some(inner) = value.as_variant() {
            value = inner;
        }
        match value.get::<u32>()? {
            1 => Some(Panel::Dark),
            2 => Some(Panel::Light),
            _ => None,
        }
    }

    /// Whether a StatusNotifierWatcher is on the session bus, waiting up to `grace` for one.
    pub fn wait_for_host(grace: Duration) -> bool {
        let Some(bus) = session() else { return false };
        let deadline = Instant::now() + grace;
        loop {
            let owned = call(
                &bus,
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "NameHasOwner",
                (WATCHER,).to_variant(),
            )
            .and_then(|v| v.try_child_value(0))
            .and_then(|v| v.get::<bool>());
            match owned {
                Some(true) => return true,
                // The bus did not answer: nothing to tell the user about.
                None => return true,
                Some(false) if Instant::now() >= deadline => return false,
                Some(false) => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod session_bus {
    use std::time::Duration;

    use super::Panel;

    pub const WATCHER: &str = "a tray";

    pub fn color_scheme() -> Option<Panel> {
        None
    }

    pub fn wait_for_host(_grace: Duration) -> bool {
        true
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
    /// The icon on show, and the panel it was drawn for.
    shown: (IconState, Panel),
    /// What the last figures said, to redraw the icon for another panel.
    last: (BudgetLevel, bool),
}

/// Today's headline figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Today {
    pub cost_usd: f64,
    pub sessions: f64,
    pub tokens: f64,
    /// The daily budget for all models, when one is set.
    pub daily_limit_usd: Option<f64>,
    /// Where the spend stands against every budget.
    pub budget: BudgetLevel,
}

impl Today {
    pub fn of(f: &Figures, daily_limit_usd: Option<f64>, budget: BudgetLevel) -> Today {
        Today {
            cost_usd: f.cost_usd,
            sessions: f.sessions,
            tokens: f.tokens.total,
            daily_limit_usd,
            budget,
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
        // The variant for dark panels until the desktop says it prefers light (`watch_host`).
        let shown = (
            if problem_title.is_some() { IconState::Problem } else { IconState::Normal },
            Panel::Dark,
        );
        let icon = TrayIconBuilder::new()
            .with_id("tokentray")
            .with_icon(icon(shown.0, shown.1)?)
            .with_title(problem_title.unwrap_or("…"))
            .with_tooltip("tokentray")
            .with_menu(Box::new(menu))
            .with_menu_on_left_click(true)
            .build()
            .map_err(|e| DesktopError::Tray(format!("cannot create the tray icon: {e}")))?;
        let last = (BudgetLevel::Under, false);
        Ok(Tray { icon, info, forward, autostart, pause, problem_title, shown, last })
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
            TrayEvent::Host(true) => {
                if let Some(login) = &ctx.login {
                    login.enable_on_first_run(ctx.shared.data_dir());
                    match login.is_enabled() {
                        Ok(on) => self.autostart.set_checked(on),
                        Err(e) => tracing::warn!("cannot read the start-at-login state: {e}"),
                    }
                }
            }
            // Said once (log, notification) by `watch_host`; the window is what there is to see.
            TrayEvent::Host(false) => ctx.launcher.open_logged(),
            TrayEvent::Panel(panel) => {
                let (level, paused) = self.last;
                self.set_icon(self.state(level, paused), panel);
            }
            TrayEvent::Quit => return true,
        }
        false
    }

    /// Shows today's figures: label (or the engine problem), info row, tooltip, and whether
    /// alerts are paused.
    fn show(&mut self, today: &Today, alerts_paused: bool) {
        self.last = (today.budget, alerts_paused);
        self.set_icon(self.state(today.budget, alerts_paused), self.shown.1);
        let title = self.problem_title.map(str::to_string).unwrap_or_else(|| today.title());
        let line = today.line();
        self.icon.set_title(Some(&title));
        if let Err(e) = self.icon.set_tooltip(Some(format!("tokentray — {line}"))) {
            tracing::warn!("cannot update the tray: {e}");
        }
        self.info.set_text(&line);
        self.pause.set_checked(alerts_paused);
    }

    /// The icon for these figures: an engine problem first, then a pause, then the budgets.
    fn state(&self, budget: BudgetLevel, alerts_paused: bool) -> IconState {
        if self.problem_title.is_some() {
            IconState::Problem
        } else if alerts_paused {
            IconState::Paused
        } else {
            match budget {
                BudgetLevel::Over => IconState::Over,
                BudgetLevel::Warning => IconState::Warning,
                BudgetLevel::Under => IconState::Normal,
            }
        }
    }

    /// Replaces the icon, only when it changes (each change writes a file the panel reloads).
    fn set_icon(&mut self, state: IconState, panel: Panel) {
        if self.shown == (state, panel) {
            return;
        }
        match icon(state, panel).and_then(|i| {
            self.icon
                .set_icon(Some(i))
                .map_err(|e| DesktopError::Tray(format!("cannot change the icon: {e}")))
        }) {
            Ok(()) => {
                tracing::info!(state = ?state, panel = ?panel, "tray icon changed");
                self.shown = (state, panel);
            }
            Err(e) => tracing::warn!("{e}"),
        }
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
                    // The icon shows the pause right away, not at the next figures.
                    self.last.1 = paused;
                    self.set_icon(self.state(self.last.0, paused), self.shown.1);
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
fn icon(state: IconState, panel: Panel) -> Result<Icon, DesktopError> {
    let bad = |e: String| DesktopError::Tray(format!("the built-in icon cannot be decoded: {e}"));
    let mut decoder = png::Decoder::new(std::io::Cursor::new(icon_png(state, panel)));
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
        let t = Today {
            cost_usd: 3.42,
            sessions: 4.0,
            tokens: 1_234_567.0,
            daily_limit_usd: None,
            budget: BudgetLevel::Under,
        };
        assert_eq!(t.title(), "$3.42");
        assert_eq!(
            Today { daily_limit_usd: Some(20.0), cost_usd: 16.12, ..t.clone() }.title(),
            "$16.12 / $20"
        );
        assert_eq!(Today { daily_limit_usd: Some(12.5), ..t.clone() }.title(), "$3.42 / $12.50");
        assert_eq!(t.line(), "Today: $3.42 · 4 sessions · 1.2M tokens");
        let one = Today {
            cost_usd: 0.004,
            sessions: 1.0,
            tokens: 950.0,
            daily_limit_usd: None,
            budget: BudgetLevel::Under,
        };
        assert_eq!(one.line(), "Today: $0.0040 · 1 session · 950 tokens");
        assert_eq!(
            Today { cost_usd: 0.0, tokens: 0.0, sessions: 0.0, ..t.clone() }.title(),
            "$0.00"
        );
    }

    /// Each state and panel has its own picture, and the colour says the state: green, amber,
    /// red, grey, blue (what the README describes).
    #[test]
    fn every_state_has_its_own_icon() {
        use IconState::*;
        let states = [Normal, Warning, Over, Problem, Paused];
        let mut seen = Vec::new();
        for state in states {
            for panel in [Panel::Dark, Panel::Light] {
                let mut d = png::Decoder::new(std::io::Cursor::new(icon_png(state, panel)));
                d.set_transformations(png::Transformations::normalize_to_color8());
                let mut r = d.read_info().unwrap();
                let mut buf = vec![0; r.output_buffer_size().unwrap()];
                let frame = r.next_frame(&mut buf).unwrap();
                assert_eq!(
                    (frame.width, frame.height, frame.color_type),
                    (64, 64, png::ColorType::Rgba)
                );
                assert!(!seen.contains(&buf), "{state:?} {panel:?} looks like another state");
                // The colour at the tile's left edge, between the bars and the edge.
                let at = |x: usize, y: usize| {
                    let i = (y * 64 + x) * 4;
                    (buf[i], buf[i + 1], buf[i + 2], buf[i + 3])
                };
                let (r, g, b, a) = at(11, 40);
                assert_eq!(a, 255, "{state:?}: the tile is opaque");
                let ok = match state {
                    Normal => g > r + 60 && g > b,
                    Warning => r > 200 && g > 120 && b < 60,
                    Over => r > 180 && g < 80 && b < 80,
                    Problem => r.abs_diff(g) < 20 && g.abs_diff(b) < 20,
                    Paused => b > r + 40 && b > g,
                };
                assert!(ok, "{state:?} {panel:?} is {:?}", (r, g, b));
                // The edge contrasts with the panel: light on dark panels, dark on light ones.
                let (er, _, _, ea) = at(4, 32);
                assert!(ea > 200, "{state:?} {panel:?} has an edge");
                assert_eq!(er > 128, panel == Panel::Dark, "{state:?} {panel:?} edge {er}");
                seen.push(buf);
            }
        }
    }
}
