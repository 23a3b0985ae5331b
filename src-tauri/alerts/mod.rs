//! Where budget alerts go. The core decides *when* (tokentray_core::budget); these deliver:
//! [`desktop`] (D-Bus notifications), [`command`] (a program per alert), [`webhook`] (JSON POST).

pub mod command;
pub mod desktop;
pub mod webhook;

use tokentray_core::budget::{LogNotifier, Notifiers};
use tokentray_core::config::AlertsConfig;

/// The notifiers of `tokentray serve`: the log always; the desktop only when asked for
/// (`[alerts] desktop = true`, since `serve` often runs where no one sees a desktop); the
/// command and the webhook when configured.
pub fn for_serve(config: &AlertsConfig) -> anyhow::Result<Notifiers> {
    notifiers(config, config.desktop == Some(true))
}

/// The notifiers of the tray app: the desktop unless turned off (`[alerts] desktop = false`),
/// and the log, command and webhook as for `serve`.
#[cfg(feature = "desktop")]
pub fn for_tray(config: &AlertsConfig) -> anyhow::Result<Notifiers> {
    notifiers(config, config.desktop != Some(false))
}

fn notifiers(config: &AlertsConfig, desktop: bool) -> anyhow::Result<Notifiers> {
    let mut list = Notifiers::new().with(LogNotifier);
    let mut channels = vec!["log".to_string()];
    if desktop {
        list = list.with(desktop::DesktopNotifier);
        channels.push("desktop".into());
    }
    if let Some(c) = command::CommandNotifier::new(&config.command) {
        channels.push(format!("command {}", c.program()));
        list = list.with(c);
    }
    if let Some(url) = &config.webhook {
        let w = webhook::WebhookNotifier::new(url).map_err(anyhow::Error::msg)?;
        channels.push(format!("webhook {}", w.shown()));
        list = list.with(w);
    }
    tracing::debug!(channels = channels.join(", "), "budget alerts go to");
    Ok(list)
}
