//! Secrets in the OS keychain through the `keyring` crate: Secret Service on Linux (GNOME
//! Keyring, KWallet), Keychain on macOS, Credential Manager on Windows.
//!
//! Entries live under the service name `tokentray`. Errors say what failed, never the value.

use std::path::Path;

use super::headers::Headers;
use super::ForwardError;
use crate::config::ForwardConfig;

const SERVICE: &str = "tokentray";
/// The forwarding headers, in `OTEL_EXPORTER_OTLP_HEADERS` syntax.
pub const FORWARD_HEADERS: &str = "forward-headers";

/// The keychain entry of a header `serve --require-header NAME=@keychain` checks.
pub fn receiver_header_entry(name: &str) -> String {
    format!("receiver-header:{}", name.to_ascii_lowercase())
}

fn entry(name: &str) -> Result<keyring::Entry, ForwardError> {
    keyring::Entry::new(SERVICE, name).map_err(|e| keychain_error("open", name, e))
}

fn keychain_error(what: &str, name: &str, e: keyring::Error) -> ForwardError {
    let hint = match e {
        keyring::Error::NoStorageAccess(_) | keyring::Error::PlatformFailure(_) => {
            "; is a keyring (GNOME Keyring, KWallet) running and unlocked? On a machine without one, set [forward] headers_file"
        }
        _ => "",
    };
    ForwardError::Keychain(format!(
        "cannot {what} the keychain entry '{SERVICE}/{name}': {e}{hint}"
    ))
}

/// Stores `value` under `name`, replacing what was there.
pub fn store(name: &str, value: &str) -> Result<(), ForwardError> {
    entry(name)?.set_password(value).map_err(|e| keychain_error("write", name, e))
}

/// The value under `name`, `None` when there is none.
pub fn load(name: &str) -> Result<Option<String>, ForwardError> {
    match entry(name)?.get_password() {
        Ok(v) => Ok(Some(v)),
        Err(keyring::Error::NoEntry) => Ok(None),
        Err(e) => Err(keychain_error("read", name, e)),
    }
}

/// Deletes `name`; tells whether there was one.
pub fn delete(name: &str) -> Result<bool, ForwardError> {
    match entry(name)?.delete_credential() {
        Ok(()) => Ok(true),
        Err(keyring::Error::NoEntry) => Ok(false),
        Err(e) => Err(keychain_error("delete", name, e)),
    }
}

/// The headers forwarding sends: from `[forward] headers_file` when set, else the keychain.
pub fn forward_headers(config: &ForwardConfig) -> Result<Headers, ForwardError> {
    match &config.headers_file {
        Some(path) => Headers::parse(&read_secret_file(path)?),
        None => match load(FORWARD_HEADERS)? {
            Some(text) => Headers::parse(&text),
            None => Ok(Headers::default()),
        },
    }
}

/// A secret kept in a file (the whole file, without its trailing newline).
pub(crate) fn read_secret_file(path: &Path) -> Result<String, ForwardError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ForwardError::Keychain(format!("cannot read the secret file {}: {e}", path.display()))
    })?;
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}
