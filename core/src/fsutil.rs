//! Writing the user's files (config.toml, Claude Code's settings.json) without ever leaving a
//! half-written one.

use std::path::{Path, PathBuf};

/// Writes `text` to a sibling temporary file and renames it over `path` (creating the parent
/// directory): a reader, such as Claude Code starting, sees the old file or the new one, and a
/// failure leaves the old one. The file keeps the permissions it had (it may hold tokens).
pub(crate) fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tokentray-tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text)?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
