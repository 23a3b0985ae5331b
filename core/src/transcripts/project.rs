//! A session's project: the git work tree holding its `cwd` (top-level folder), else the `cwd`.

use std::collections::HashMap;
use std::path::Path;

/// A project's display name and full path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Project {
    pub name: String,
    pub path: String,
    /// The `cwd` exists and is in no git work tree. Claude Code still writes a `gitBranch` for
    /// it (`HEAD`), which then names no branch and is not kept.
    pub outside_git: bool,
}

/// Resolves each `cwd` once per import.
#[derive(Default)]
pub(crate) struct ProjectResolver {
    cache: HashMap<String, Project>,
}

impl ProjectResolver {
    pub(crate) fn resolve(&mut self, cwd: &str) -> Project {
        if let Some(p) = self.cache.get(cwd) {
            return p.clone();
        }
        let project = resolve_uncached(Path::new(cwd));
        self.cache.insert(cwd.to_string(), project.clone());
        project
    }
}

fn resolve_uncached(cwd: &Path) -> Project {
    // A work tree's top level holds `.git` (a folder, or a file in linked work trees and
    // submodules). A cwd that no longer exists is its own project.
    let work_tree = cwd.ancestors().find(|dir| dir.join(".git").exists());
    let outside_git = work_tree.is_none() && cwd.is_dir();
    let top = work_tree.unwrap_or(cwd);
    let name = top
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| top.to_string_lossy().into_owned());
    Project { name, path: top.to_string_lossy().into_owned(), outside_git }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_tree_top_level_else_the_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(repo.join(".git")).expect("mkdir");
        std::fs::create_dir_all(repo.join("src/deep")).expect("mkdir");
        let mut r = ProjectResolver::default();
        let p = r.resolve(&repo.join("src/deep").to_string_lossy());
        assert_eq!((p.name.as_str(), p.path), ("repo", repo.to_string_lossy().into_owned()));
        assert!(!p.outside_git);
        let plain = dir.path().join("plain");
        std::fs::create_dir_all(&plain).expect("mkdir");
        assert!(r.resolve(&plain.to_string_lossy()).outside_git);
        let gone = r.resolve("/no/such/place/anymore");
        assert_eq!(gone.name, "anymore");
        assert!(!gone.outside_git, "a folder that is gone may have been a work tree");
    }
}
