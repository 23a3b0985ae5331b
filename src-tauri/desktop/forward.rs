//! "Forward to team" for the tray and the window: thin calls into `tokentray_core::forward`.
//!
//! The on/off switch and the forwarder's state live in the history's `settings` table, so the
//! tray's checkbox, the window's toggle, `tokentray forward on|off` and the running forwarder all
//! see the same thing. `[forward]` is re-read from the config file on each look, because
//! `tokentray forward setup` may write it while the app runs.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use tokentray_core::config::{file_stamp, Config, FileStamp, ForwardConfig};
use tokentray_core::forward::queue::Queue;
use tokentray_core::forward::{control, secret, ForwardError, ForwardStatus, Headers};
use tokentray_core::store::{StoreError, DB_FILE};

use super::DesktopError;

/// Longest reason shown in the tray's menu (the window shows it whole).
const MENU_REASON_CHARS: usize = 40;

/// Everything the window's section shows. Header values never leave the keychain: only names
/// and lengths ([`Headers::masked`]).
#[derive(Debug, Clone, Serialize)]
pub struct ForwardView {
    #[serde(flatten)]
    pub status: ForwardStatus,
    /// `Authorization=****** (18 characters)` per stored header; `None` when not asked for.
    pub headers: Option<Vec<String>>,
    /// Why the stored headers could not be read (no keyring running, …).
    pub headers_error: Option<String>,
    /// Set when `[forward] headers_file` is used instead of the keychain.
    pub headers_file: Option<PathBuf>,
}

/// What the tray's checkbox shows.
#[derive(Debug, Clone, PartialEq)]
pub struct TrayForward {
    pub configured: bool,
    pub enabled: bool,
    pub label: String,
}

/// `[forward]` of the config file and the forwarding state of one data directory.
pub struct ForwardSource {
    db: PathBuf,
    file: Option<PathBuf>,
    /// The section at start, for a config without a file; also kept when the file is unreadable.
    fixed: ForwardConfig,
    /// Opened on first use and kept; dropped after an error so the next call reopens it.
    queue: Mutex<Option<Queue>>,
    /// What the tray's checkbox last got, and what it was computed from: the tray looks every
    /// few seconds, and while nothing changed that look is a `stat` and a pragma, not a parse
    /// of the config file and a status query.
    tray_cache: Mutex<Option<(TrayInputs, TrayForward)>>,
}

/// What the checkbox's state depends on: the config file (`[forward]`) and the database (the
/// switch, the forwarder's pause). `PRAGMA data_version` moves when another connection commits
/// (the forwarder, the engine's writer, the CLI); this process's own writes clear the cache.
#[derive(Debug, Clone, PartialEq)]
struct TrayInputs {
    file: Option<FileStamp>,
    data_version: i64,
}

impl ForwardSource {
    pub fn of(config: &Config, data_dir: &Path) -> ForwardSource {
        ForwardSource {
            db: data_dir.join(DB_FILE),
            file: config.source.clone(),
            fixed: config.forward.clone(),
            queue: Mutex::new(None),
            tray_cache: Mutex::new(None),
        }
    }

    /// `[forward]` as the config file says now.
    pub fn config(&self) -> ForwardConfig {
        let Some(path) = &self.file else { return self.fixed.clone() };
        match Config::from_file(path) {
            Ok(c) => c.forward,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the config file; showing the forwarding settings it had at start");
                self.fixed.clone()
            }
        }
    }

    /// Runs `f` on the kept connection to the history. Blocking.
    fn with_queue<T>(
        &self,
        f: impl FnOnce(&Queue) -> Result<T, ForwardError>,
    ) -> Result<T, DesktopError> {
        super::with_kept(&self.queue, || Ok(Queue::open(&self.db)?), f)
    }

    pub fn status(&self) -> Result<ForwardStatus, DesktopError> {
        self.status_of(&self.config())
    }

    fn status_of(&self, config: &ForwardConfig) -> Result<ForwardStatus, DesktopError> {
        let now_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
        self.with_queue(|q| control::status(q, config, now_ns))
    }

    /// The status, plus the stored headers (masked) when `with_headers`: the window asks for
    /// them once, not on every refresh, since a locked keychain may prompt to unlock.
    pub fn view(&self, with_headers: bool) -> Result<ForwardView, DesktopError> {
        // One read of the config file for both.
        let config = self.config();
        let status = self.status_of(&config)?;
        let (headers, headers_error) = match with_headers.then(|| secret::forward_headers(&config))
        {
            None => (None, None),
            Some(Ok(h)) => (Some(h.masked()), None),
            Some(Err(e)) => (None, Some(e.to_string())),
        };
        Ok(ForwardView { status, headers, headers_error, headers_file: config.headers_file })
    }

    /// Turns forwarding on or off. Turning it on needs `[forward] endpoint`: there is nowhere
    /// to send to otherwise.
    pub fn set_enabled(&self, on: bool) -> Result<(), DesktopError> {
        if on && self.config().endpoint.is_none() {
            return Err(ForwardError::Config("forwarding is not set up: run tokentray forward setup --endpoint URL --protocol grpc".into()).into());
        }
        self.with_queue(|q| control::set_enabled(q, on))?;
        self.forget_tray();
        tracing::info!(on, "forwarding turned on or off from the desktop");
        Ok(())
    }

    /// Flips the switch from its stored state (not from the checkbox, which GTK already toggled).
    /// Returns whether forwarding is now on.
    pub fn toggle(&self) -> Result<bool, DesktopError> {
        let on = !self.with_queue(control::is_enabled)?;
        self.set_enabled(on)?;
        Ok(on)
    }

    /// Stores headers (`OTEL_EXPORTER_OTLP_HEADERS` syntax) in the keychain and tells the
    /// running forwarder. Returns their masked form; the text itself is neither logged nor
    /// returned, and errors name items, never values.
    pub fn save_headers(&self, text: &str) -> Result<Vec<String>, DesktopError> {
        let headers = Headers::parse(text)?;
        if headers.is_empty() {
            return Err(ForwardError::Headers(
                "type at least one name=value (e.g. Authorization=Bearer%20TOKEN)".into(),
            )
            .into());
        }
        if let Some(file) = self.config().headers_file {
            return Err(ForwardError::Config(format!("[forward] headers_file ({}) is set, so the keychain is not used: edit that file, or remove the setting", file.display())).into());
        }
        secret::store(secret::FORWARD_HEADERS, &headers.to_text())?;
        self.with_queue(control::headers_changed)?;
        self.forget_tray();
        tracing::info!(names = ?headers.names(), "forwarding headers saved in the keychain");
        Ok(headers.masked())
    }

    /// The checkbox: enabled when an endpoint is set, checked when on, and a short reason when
    /// the forwarder paused for wrong credentials.
    pub fn tray(&self) -> Result<TrayForward, DesktopError> {
        Ok(self.tray_state()?.0)
    }

    /// [`tray`](Self::tray) when it differs from what the last look found (or after this
    /// process changed something), else `None`: the periodic look wakes the tray's thread only
    /// when there is something new to show.
    pub fn tray_if_changed(&self) -> Result<Option<TrayForward>, DesktopError> {
        let (state, changed) = self.tray_state()?;
        Ok(changed.then_some(state))
    }

    fn tray_state(&self) -> Result<(TrayForward, bool), DesktopError> {
        // Held for the whole look, so that `forget_tray` after a write cannot land between a
        // look's reads and its storing what it read.
        let mut cache =
            self.tray_cache.lock().map_err(|_| DesktopError::Store(StoreError::Poisoned))?;
        let inputs = TrayInputs {
            file: self.file.as_deref().and_then(file_stamp),
            data_version: self.with_queue(|q| q.data_version())?,
        };
        if let Some((seen, state)) = cache.as_ref() {
            if *seen == inputs {
                return Ok((state.clone(), false));
            }
        }
        let s = self.status()?;
        let label = match &s.paused {
            Some(reason) if s.enabled => {
                format!("Forward to team — paused: {}", shorten(reason, MENU_REASON_CHARS))
            }
            _ => "Forward to team".to_string(),
        };
        let state = TrayForward { configured: s.configured, enabled: s.enabled, label };
        let changed = cache.as_ref().is_none_or(|(_, before)| *before != state);
        *cache = Some((inputs, state.clone()));
        Ok((state, changed))
    }

    /// After a write through this process's own connection, which `data_version` does not show
    /// (so: after the write, not before, or a look in between would keep the old state).
    fn forget_tray(&self) {
        if let Ok(mut cache) = self.tray_cache.lock() {
            *cache = None;
        }
    }
}

/// `text` cut to `max` characters at a word boundary where possible, with an ellipsis.
fn shorten(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    let cut = match cut.rfind(' ') {
        Some(i) if i > max / 2 => &cut[..i],
        _ => cut.as_str(),
    };
    format!("{}…", cut.trim_end_matches([' ', ',', ';', ':', '.']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn menu_reason_is_short() {
        assert_eq!(shorten("401 Unauthorized", 40), "401 Unauthorized");
        let long = "401 Unauthorized: the collector refused the credentials; set new headers";
        let s = shorten(long, 40);
        assert!(
            s.chars().count() <= 41 && s.ends_with('…') && s.starts_with("401 Unauthorized"),
            "{s}"
        );
        assert_eq!(shorten("abcdefghij", 4), "abcd…");
    }
}
