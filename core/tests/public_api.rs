//! The core crate's public API, checked in as `core/public-api.txt`, so that a change to it is a
//! visible diff in review.
//!
//! With `unreachable_pub` denied (CI runs clippy with `-D warnings`), every declaration spelled
//! `pub` in `core/src` is reachable from outside the crate, so listing those declarations is the
//! public surface. Each line is `module path: declaration` (the declaration up to its body).
//! The `testkit` (feature `testkit`) is left out: it is not part of the shipped engine.
//!
//! After a deliberate change: `UPDATE_PUBLIC_API=1 cargo test -p tokentray-core --test public_api`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

const LISTING: &str = "public-api.txt";

#[test]
fn the_public_api_is_the_checked_in_listing() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let listing = public_declarations(&root.join("src")).join("\n") + "\n";
    let path = root.join(LISTING);
    if std::env::var_os("UPDATE_PUBLIC_API").is_some() {
        std::fs::write(&path, &listing).expect("write the listing");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in != listing {
        let diff = similar::TextDiff::from_lines(&checked_in, &listing)
            .unified_diff()
            .header("core/public-api.txt", "core/src")
            .to_string();
        panic!(
            "the core crate's public API changed; if that is intended, run\n  \
             UPDATE_PUBLIC_API=1 cargo test -p tokentray-core --test public_api\n\
             and commit core/public-api.txt\n\n{diff}"
        );
    }
}

/// Every `pub` declaration under `src`, as `module: declaration`, sorted by file then line.
fn public_declarations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    collect_rs(src, &mut files);
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let rel = file.strip_prefix(src).expect("under src");
        if is_test_only(rel) {
            continue;
        }
        let module = module_path(rel);
        let text = std::fs::read_to_string(&file).expect("read source");
        for declaration in declarations(&text) {
            out.push(format!("{module}: {declaration}"));
        }
    }
    out
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Unit-test files and the testkit are not part of the shipped API.
fn is_test_only(rel: &Path) -> bool {
    let first = rel.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned());
    first.as_deref() == Some("testkit")
        || first.as_deref() == Some("testkit.rs")
        || rel.file_name().is_some_and(|n| n == "tests.rs")
}

/// `store/writer.rs` → `store::writer`; `store/mod.rs` → `store`; `lib.rs` → `crate`.
fn module_path(rel: &Path) -> String {
    let mut parts: Vec<String> =
        rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if stem != "mod" && stem != "lib" {
            parts.push(stem.to_string());
        }
    }
    if parts.is_empty() {
        "crate".to_string()
    } else {
        parts.join("::")
    }
}

/// The `pub` lines of one file, each cut at its body, stopping at the unit-test module.
///
/// `pub` fields of a struct that is itself not `pub` are left out: `unreachable_pub` does not
/// flag them, and they are not reachable from outside.
fn declarations(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut previous_was_cfg_test = false;
    let mut private_body_end: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if previous_was_cfg_test && trimmed.starts_with("mod tests {") {
            break;
        }
        previous_was_cfg_test = trimmed.starts_with("#[cfg(test)]");
        if let Some(end) = &private_body_end {
            if line == end {
                private_body_end = None;
            }
            continue;
        }
        if opens_private_struct(trimmed) {
            let indent = &line[..line.len() - trimmed.len()];
            private_body_end = Some(format!("{indent}}}"));
            continue;
        }
        if !trimmed.starts_with("pub ") {
            continue;
        }
        let cut = trimmed.find(['{', '=', ';']).map_or(trimmed, |i| &trimmed[..i]);
        out.push(cut.trim_end().to_string());
    }
    out
}

/// `struct X {` or `pub(crate) struct X {` (any restricted visibility), with fields to follow.
fn opens_private_struct(trimmed: &str) -> bool {
    let rest = if let Some(after) = trimmed.strip_prefix("pub(") {
        match after.split_once(") ") {
            Some((_, rest)) => rest,
            None => return false,
        }
    } else {
        trimmed
    };
    (rest.starts_with("struct ") || rest.starts_with("enum ")) && trimmed.ends_with('{')
}
