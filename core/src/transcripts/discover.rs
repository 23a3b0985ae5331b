//! Where Claude Code keeps its transcripts: `projects/**/*.jsonl` under each config directory.

use std::path::{Path, PathBuf};

use super::TranscriptsConfig;

/// Claude Code's config directories, in the order it would use them: `CLAUDE_CONFIG_DIR` (a
/// comma-separated list, each entry may start with `~`), else `$XDG_CONFIG_HOME/claude`
/// (default `~/.config/claude`) and `~/.claude`. `[transcripts] paths` replaces the lot.
pub(crate) fn config_dirs(config: &TranscriptsConfig) -> Vec<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let dirs: Vec<PathBuf> = if !config.paths.is_empty() {
        config.paths.iter().map(|p| expand_home(&p.to_string_lossy(), home.as_deref())).collect()
    } else if let Some(list) = std::env::var_os("CLAUDE_CONFIG_DIR").filter(|v| !v.is_empty()) {
        list.to_string_lossy()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| expand_home(s, home.as_deref()))
            .collect()
    } else {
        let xdg = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".config")));
        xdg.map(|x| x.join("claude")).into_iter().chain(home.map(|h| h.join(".claude"))).collect()
    };
    let mut unique: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        let canonical = dir.canonicalize().unwrap_or(dir);
        if !unique.contains(&canonical) {
            unique.push(canonical);
        }
    }
    unique
}

fn expand_home(entry: &str, home: Option<&Path>) -> PathBuf {
    match (entry.strip_prefix('~'), home) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
            home.join(rest.trim_start_matches('/'))
        }
        _ => PathBuf::from(entry),
    }
}

/// The folder whose `*.jsonl` files are read: `<dir>/projects`, or the directory itself when a
/// configured path points straight at a folder of transcripts.
pub(crate) fn projects_root(dir: &Path) -> PathBuf {
    let projects = dir.join("projects");
    if projects.is_dir() {
        projects
    } else {
        dir.to_path_buf()
    }
}

/// Every `*.jsonl` below `root` (subagent files in nested folders included), sorted.
pub(crate) fn transcript_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() && path.extension().is_some_and(|e| e == "jsonl") => {
                    out.push(path)
                }
                _ => {}
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_home_and_finds_nested_files() {
        assert_eq!(expand_home("~/a", Some(Path::new("/h"))), PathBuf::from("/h/a"));
        assert_eq!(expand_home("~", Some(Path::new("/h"))), PathBuf::from("/h"));
        assert_eq!(expand_home("/x/~y", Some(Path::new("/h"))), PathBuf::from("/x/~y"));
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("projects/-p/s1/subagents");
        std::fs::create_dir_all(&sub).expect("mkdir");
        std::fs::write(dir.path().join("projects/-p/s1.jsonl"), "").expect("write");
        std::fs::write(sub.join("agent-1.jsonl"), "").expect("write");
        std::fs::write(sub.join("notes.md"), "").expect("write");
        let root = projects_root(dir.path());
        assert_eq!(transcript_files(&root).len(), 2);
    }
}
