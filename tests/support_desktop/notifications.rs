//! A desktop notification server as small as the spec allows: owns
//! `org.freedesktop.Notifications` on the test's session bus and records each `Notify` call, so
//! a test sees exactly what the user would have seen pop up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

// zbus_macros 5 writes one path as `zbus::…` whatever `crate =` says: point that name at zbus 5.
use zbus5 as zbus;
use zbus5::blocking::Connection;
use zbus5::zvariant::OwnedValue;

/// One `Notify` call.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    pub app_name: String,
    pub summary: String,
    pub body: String,
}

struct Server {
    shown: Arc<Mutex<Vec<Shown>>>,
    next_id: u32,
}

#[zbus5::interface(name = "org.freedesktop.Notifications", crate = "zbus5")]
impl Server {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &mut self,
        app_name: String,
        _replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        _actions: Vec<String>,
        _hints: HashMap<String, OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        if let Ok(mut shown) = self.shown.lock() {
            shown.push(Shown { app_name, summary, body });
        }
        self.next_id += 1;
        self.next_id
    }

    fn get_capabilities(&self) -> Vec<String> {
        vec!["body".into()]
    }

    #[zbus(out_args("name", "vendor", "version", "spec_version"))]
    fn get_server_information(&self) -> (String, String, String, String) {
        ("recorder".into(), "tokentray tests".into(), "1.0".into(), "1.2".into())
    }

    fn close_notification(&self, _id: u32) {}
}

/// Owns the notification service while alive.
pub struct Notifications {
    _conn: Connection,
    shown: Arc<Mutex<Vec<Shown>>>,
}

impl Notifications {
    pub fn start() -> Notifications {
        let shown = Arc::new(Mutex::new(Vec::new()));
        let conn = zbus5::blocking::connection::Builder::session()
            .and_then(|b| b.name("org.freedesktop.Notifications"))
            .and_then(|b| {
                b.serve_at(
                    "/org/freedesktop/Notifications",
                    Server { shown: shown.clone(), next_id: 0 },
                )
            })
            .and_then(|b| b.build())
            .unwrap_or_else(|e| {
                panic!("own org.freedesktop.Notifications on the session bus: {e}")
            });
        Notifications { _conn: conn, shown }
    }

    pub fn shown(&self) -> Vec<Shown> {
        self.shown.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The notifications shown since the last call.
    pub fn take(&self) -> Vec<Shown> {
        self.shown.lock().map(|mut s| s.drain(..).collect()).unwrap_or_default()
    }

    /// Waits until at least `n` notifications were shown; returns them all.
    pub fn wait_count(&self, n: usize, timeout: Duration) -> Option<Vec<Shown>> {
        super::wait_for(timeout, || {
            let s = self.shown();
            (s.len() >= n).then_some(s)
        })
    }
}
