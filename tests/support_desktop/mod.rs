//! Helpers of the desktop end-to-end tests (`tests/desktop_*.rs`): a headless X + D-Bus session
//! per test ([`session`]), the app as a child process ([`app`]), a StatusNotifierWatcher and
//! dbusmenu client to see and click the tray for real ([`sni`]), a plain-HTTP WebDriver client
//! for WebKitWebDriver ([`webdriver`]), the X display as a window manager sees it ([`x11`]), a
//! recording notification server ([`notifications`]), and Claude Code-shaped data sent over OTLP
//! ([`otlp`]).
#![allow(dead_code)]

pub mod app;
pub mod notifications;
pub mod otlp;
pub mod proc;
pub mod session;
pub mod sni;
pub mod webdriver;
pub mod x11;

use std::time::{Duration, Instant};

/// Polls `f` every 20 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `target/screenshots/` of this workspace (created).
pub fn screenshot_dir() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).expect("create target/screenshots");
    dir
}
