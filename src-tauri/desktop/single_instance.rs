//! One tray per session: a second launch asks the first to open its window, then exits before
//! it binds anything.
//!
//! On Linux this is a GApplication on the session bus (GTK is loaded anyway), as tao and
//! tauri-plugin-single-instance do it: the first launch owns the bus name `dev.tokentray.app`;
//! a later one finds it taken, calls the owner's `Activate` and leaves. Elsewhere every launch
//! is a first one, and a second engine finds the ports held and says so in its tray.

/// Whether this launch is the one that runs.
pub enum Instance {
    /// Keep the value alive as long as the app runs: it holds the bus name.
    First(Guard),
    /// Another launch runs; it was asked to open its window.
    Second,
}

/// Holds the bus name.
pub struct Guard {
    #[cfg(target_os = "linux")]
    _app: Option<gtk::gio::Application>,
}

/// The bus name: Tauri's identifier of the app (tauri.conf.json).
#[cfg(target_os = "linux")]
const APP_ID: &str = "dev.tokentray.app";

/// Claims the session. `on_second_launch` runs on this (the GTK) thread each time a later
/// launch hands over. Call after GTK is initialised and before binding any port.
#[cfg(target_os = "linux")]
pub fn claim(on_second_launch: impl Fn() + 'static) -> Instance {
    use gtk::gio;
    use gtk::prelude::*;

    let app = gio::Application::new(Some(APP_ID), gio::ApplicationFlags::empty());
    if let Err(e) = app.register(None::<&gio::Cancellable>) {
        // No session bus: run anyway; a second engine would find the ports held.
        tracing::warn!("cannot check for another running tokentray (no session bus?): {e}");
        return Instance::First(Guard { _app: None });
    }
    if app.is_remote() {
        tracing::info!("tokentray is already running: asking it to open its window");
        app.activate();
        // The call is queued on the bus connection: send it before this process exits.
        if let Ok(bus) = gio::bus_get_sync(gio::BusType::Session, None::<&gio::Cancellable>) {
            if let Err(e) = bus.flush_sync(None::<&gio::Cancellable>) {
                tracing::warn!("cannot reach the running tokentray: {e}");
            }
        }
        return Instance::Second;
    }
    app.connect_activate(move |_| on_second_launch());
    Instance::First(Guard { _app: Some(app) })
}

#[cfg(not(target_os = "linux"))]
pub fn claim(_on_second_launch: impl Fn() + 'static) -> Instance {
    Instance::First(Guard {})
}
