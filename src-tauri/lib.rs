//! The `tokentray` application around the headless core (`tokentray-core`): what its two
//! binaries share.
//!
//! * `tokentray` (`src-tauri/main.rs`): the CLI ([`cli`]: `serve`, `report`, `setup`, …) and,
//!   with the default `desktop` feature, the tray app ([`desktop`]), which `tokentray` with no
//!   command starts. It never links WebKit: the tray is always running, so it must stay small.
//! * `tokentray-window` (`src-tauri/window/`): the dashboard window, a Tauri app started by the
//!   tray on "Open dashboard" and gone when the window closes. Its commands call the core through
//!   [`desktop::Shared`].
//!
//! Besides those: [`alerts`] delivers budget alerts (desktop, command, webhook), and [`process`]
//! holds what every long-running mode does alike (logging, signals, listen flags).

pub mod alerts;
pub mod cli;
#[cfg(feature = "desktop")]
pub mod desktop;
pub mod process;
