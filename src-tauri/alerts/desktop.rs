//! Desktop notifications over D-Bus (`org.freedesktop.Notifications`, the freedesktop spec every
//! Linux desktop implements), via notify-rust. Needs no window toolkit, so `serve` on a desktop
//! can use it too (`[alerts] desktop = true`).
//!
//! Self-contained (only `tokentray_core` and `notify_rust`): `tests/desktop_alerts.rs` compiles
//! this file into the test against a private session bus.

use notify_rust::{Notification, Timeout};
use tokentray_core::budget::{Alert, Notifier, NotifyError};

/// The application name notification servers show and group by.
pub const APP_NAME: &str = "tokentray";

/// Sends each alert as a desktop notification on the session bus of `DBUS_SESSION_BUS_ADDRESS`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DesktopNotifier;

impl Notifier for DesktopNotifier {
    fn notify(&self, alert: &Alert) -> Result<(), NotifyError> {
        let mut n = Notification::new();
        n.appname(APP_NAME)
            .summary(&alert.summary)
            .body(&alert.body)
            .icon("dialog-information")
            .timeout(Timeout::Default);
        // At or past the limit is worth more attention than an early warning, but not "critical":
        // servers keep critical notifications on screen until dismissed.
        #[cfg(all(unix, not(target_os = "macos")))]
        n.urgency(if alert.threshold >= 100 {
            notify_rust::Urgency::Normal
        } else {
            notify_rust::Urgency::Low
        });
        n.show()
            .map(|_| ())
            .map_err(|e| NotifyError::Failed { channel: "desktop", reason: e.to_string() })
    }
}
