//! Optional authentication of our own receiver (`serve --require-header`), so one `serve` can
//! act as a small team receiver. The expected value comes from a file or the keychain, never
//! from the command line or the config file, where other users or backups would see it.

use crate::forward::secret;

/// Why a `--require-header` (or `[receiver] require_headers`) spec cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The spec is not `NAME=@file:PATH`, `NAME=@PATH` or `NAME=@keychain`; holds the spec.
    #[error("--require-header '{0}': expected NAME=@file:PATH, NAME=@PATH or NAME=@keychain")]
    Syntax(String),
    /// The spec gives the value itself instead of where to read it; holds the header's name.
    #[error("--require-header {0}: a value written on the command line or in the config file can be read by others (/proc/<pid>/cmdline, backups); put it in a file (NAME=@file:PATH) or the keychain (NAME=@keychain, stored with `tokentray receiver set-header NAME`)")]
    Literal(String),
    /// The value could not be obtained: the file is unreadable or readable by others, the
    /// keychain has no entry or failed, or the value is empty.
    #[error("--require-header {name}: {reason}")]
    Source {
        /// The header's name.
        name: String,
        /// Why its value is unavailable.
        reason: String,
    },
}

/// Resolves `Authorization=@file:/run/secrets/token` (or `=@/path`) and `Authorization=@keychain`
/// into (name, value).
pub(crate) fn resolve(spec: &str) -> Result<(String, String), AuthError> {
    let (name, source) = spec
        .split_once('=')
        .ok_or_else(|| AuthError::Syntax(spec.chars().take_while(|c| *c != '=').collect()))?;
    let name = name.trim();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(AuthError::Syntax(name.to_string()));
    }
    let source = source.trim();
    let value = if source == "@keychain" {
        secret::load(&secret::receiver_header_entry(name))
            .map_err(|e| AuthError::Source { name: name.into(), reason: e.to_string() })?
            .ok_or_else(|| AuthError::Source {
                name: name.into(),
                reason: format!(
                    "nothing in the keychain; store it with `tokentray receiver set-header {name}`"
                ),
            })?
    } else if let Some(path) = source.strip_prefix("@file:").or_else(|| source.strip_prefix('@')) {
        let path = std::path::Path::new(path);
        if let Some(reason) = readable_by_others(path) {
            return Err(AuthError::Source { name: name.into(), reason });
        }
        secret::read_secret_file(path)
            .map_err(|e| AuthError::Source { name: name.into(), reason: e.to_string() })?
    } else {
        return Err(AuthError::Literal(name.to_string()));
    };
    if value.is_empty() {
        return Err(AuthError::Source { name: name.into(), reason: "the value is empty".into() });
    }
    Ok((name.to_string(), value))
}

/// A token file that the group or others may read or write is refused, as ssh refuses such a key:
/// the token would not be a secret. Says the `chmod` that fixes it.
#[cfg(unix)]
fn readable_by_others(path: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "the token file {} is accessible by others (mode {mode:03o}); run `chmod 600 {}`",
            path.display(),
            path.display()
        )
    })
}

#[cfg(not(unix))]
fn readable_by_others(_path: &std::path::Path) -> Option<String> {
    None
}

/// Resolves every spec with [`resolve`], stopping at the first error.
pub fn resolve_all(specs: &[String]) -> Result<Vec<(String, String)>, AuthError> {
    specs.iter().map(|s| resolve(s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_mode(path: &std::path::Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn values_come_from_files_never_from_the_spec() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "Bearer s3cr3t\n").expect("write");
        set_mode(&file, 0o600);
        let want = ("Authorization".to_string(), "Bearer s3cr3t".to_string());
        assert_eq!(
            resolve(&format!("Authorization=@file:{}", file.display())).expect("file"),
            want
        );
        assert_eq!(
            resolve(&format!("Authorization=@{}", file.display())).expect("short form"),
            want
        );
        let literal =
            resolve("Authorization=Bearer s3cr3t").expect_err("literal refused").to_string();
        assert!(
            literal.contains("/proc/<pid>/cmdline") && !literal.contains("s3cr3t"),
            "{literal}"
        );
        assert!(resolve("Authorization").is_err());

        // Readable by the group or others: refused with the fix, like ssh with a key.
        set_mode(&file, 0o644);
        let open = resolve(&format!("Authorization=@{}", file.display()))
            .expect_err("a world-readable token file")
            .to_string();
        assert!(open.contains(&format!("chmod 600 {}", file.display())), "{open}");
        assert!(!open.contains("s3cr3t"), "{open}");
        assert!(resolve(&format!("Authorization=@{}", dir.path().join("none").display())).is_err());
    }
}
