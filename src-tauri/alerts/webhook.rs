//! `[alerts] webhook = "https://…"`: POSTs each alert as JSON (the fields of
//! `tokentray_core::budget::Alert`).
//!
//! Webhook URLs often carry a secret in their path or query (Slack, ntfy, Discord), so logs and
//! errors only ever show the scheme and host ([`redact`]).

use std::time::Duration;

use tokentray_core::budget::{Alert, Notifier, NotifyError};

const TIMEOUT: Duration = Duration::from_secs(10);

pub struct WebhookNotifier {
    url: String,
    shown: String,
    agent: ureq::Agent,
}

/// `scheme://host[:port]` of a URL: no user info, path, query or fragment.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if scheme.is_empty() {
        host.to_string()
    } else {
        format!("{scheme}://{host}")
    }
}

impl WebhookNotifier {
    pub fn new(url: &str) -> Result<WebhookNotifier, String> {
        let shown = redact(url);
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        if !matches!(scheme.as_deref(), Some("http" | "https")) {
            return Err(format!(
                "[alerts] webhook must be an http:// or https:// URL (got {shown})"
            ));
        }
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .user_agent(concat!("tokentray/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(WebhookNotifier {
            url: url.to_string(),
            shown,
            agent: ureq::Agent::new_with_config(config),
        })
    }

    /// Where alerts go, fit for a log line.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

impl Notifier for WebhookNotifier {
    fn notify(&self, alert: &Alert) -> Result<(), NotifyError> {
        let body = serde_json::to_vec(alert)
            .map_err(|e| NotifyError::Failed { channel: "webhook", reason: e.to_string() })?;
        let fail = |reason: String| NotifyError::Failed {
            channel: "webhook",
            reason: format!("POST {}: {}", self.shown, reason.replace(&self.url, &self.shown)),
        };
        match self.agent.post(&self.url).header("Content-Type", "application/json").send(&body[..])
        {
            Ok(_) => Ok(()),
            Err(ureq::Error::StatusCode(code)) => Err(fail(format!("HTTP {code}"))),
            Err(e) => Err(fail(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn only_scheme_and_host_are_shown() {
        assert_eq!(
            redact("https://hooks.example.com/services/T000/B000/XXXX?token=1"),
            "https://hooks.example.com"
        );
        assert_eq!(redact("http://user:secret@127.0.0.1:8080/hook#x"), "http://127.0.0.1:8080");
        assert_eq!(redact("127.0.0.1:9/x"), "127.0.0.1:9");
    }
}
