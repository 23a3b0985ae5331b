//! "Start at login": the login entry and the command line it runs.
//!
//! `auto-launch` (the crate behind tauri-plugin-autostart) writes
//! `~/.config/autostart/tokentray.desktop` on Linux (a LaunchAgent on macOS, a registry value on
//! Windows) with `Exec=<binary> <args joined by spaces>`, unquoted; so each argument is quoted
//! here as the Desktop Entry spec requires. A launch with `--data-dir`/`--config` keeps them at
//! login, so the login start reads the same history as the launch that enabled it.

use auto_launch::{AutoLaunch, AutoLaunchBuilder};

use super::{DesktopError, Launch};

/// Marks in the data directory that start-at-login was already turned on once.
const OFFERED: &str = "autostart-offered";

/// The login entry's name (`tokentray.desktop`), as the app's product name.
const APP_NAME: &str = "tokentray";

/// The login entry of this binary, started with this launch's `--data-dir`/`--config`.
pub struct LoginEntry(AutoLaunch);

impl LoginEntry {
    pub fn new(launch: &Launch) -> Result<LoginEntry, DesktopError> {
        let exe = std::env::current_exe().map_err(|e| {
            DesktopError::Autostart(format!("cannot find this program's path: {e}"))
        })?;
        let mut builder = AutoLaunchBuilder::new();
        builder.set_app_name(APP_NAME).set_app_path(&exe.to_string_lossy()).set_args(&args(launch));
        builder.build().map(LoginEntry).map_err(|e| DesktopError::Autostart(e.to_string()))
    }

    pub fn is_enabled(&self) -> Result<bool, DesktopError> {
        self.0.is_enabled().map_err(|e| DesktopError::Autostart(e.to_string()))
    }

    /// Flips the entry from its real state (not from the checkbox, which GTK already toggled).
    /// Returns whether it is now on.
    pub fn toggle(&self) -> Result<bool, DesktopError> {
        let on = self.is_enabled()?;
        let result = if on { self.0.disable() } else { self.0.enable() };
        result.map_err(|e| DesktopError::Autostart(e.to_string()))?;
        tracing::info!(enabled = !on, "start at login changed");
        Ok(!on)
    }

    /// The first run turns start-at-login on (the app is meant to be always there, like the
    /// Docker stack it replaces); later runs respect whatever the user chose since. The marker
    /// lives with the history, so a second data directory (tests, a second profile) is a first
    /// run of its own.
    pub fn enable_on_first_run(&self, data_dir: &std::path::Path) {
        let marker = data_dir.join(OFFERED);
        if marker.exists() {
            return;
        }
        match self.0.enable() {
            Ok(()) => {
                tracing::info!("first run: start at login turned on (untick it in the tray menu)")
            }
            Err(e) => {
                tracing::warn!("first run: cannot turn on start at login: {e}");
                return;
            }
        }
        if let Err(e) = std::fs::create_dir_all(data_dir).and_then(|()| {
            std::fs::write(&marker, "start at login was turned on by the first run\n")
        }) {
            tracing::warn!("cannot record that start at login was offered: {e}");
        }
    }
}

fn args(launch: &Launch) -> Vec<String> {
    let mut args = vec!["tray".to_string()];
    for (flag, path) in [("--data-dir", &launch.data_dir), ("--config", &launch.config)] {
        if let Some(p) = path {
            let abs = std::path::absolute(p).unwrap_or_else(|_| p.clone());
            args.push(flag.to_string());
            args.push(quote(&abs.to_string_lossy()));
        }
    }
    args
}

/// Quotes one `Exec` argument: reserved characters inside double quotes, `"` `` ` `` `$` `\`
/// escaped with a backslash, `%` doubled (field codes).
fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+,:@=".contains(c));
    if plain {
        return arg.to_string();
    }
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('"');
    for c in arg.chars() {
        match c {
            '"' | '`' | '$' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '%' => out.push_str("%%"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_entry_arguments_are_quoted_for_exec() {
        assert_eq!(quote("/home/a/.local/share/tokentray"), "/home/a/.local/share/tokentray");
        assert_eq!(quote("/home/a b/$x%"), "\"/home/a b/\\$x%%\"");
        let launch = Launch { data_dir: Some("/tmp/d".into()), config: None };
        assert_eq!(args(&launch), vec!["tray", "--data-dir", "/tmp/d"]);
        assert_eq!(args(&Launch::default()), vec!["tray"]);
    }
}
