//! The core's public API, as a checked-in listing: `core/public-api.txt`.
//!
//! `unreachable_pub` (denied in CI) makes every `pub` declaration in `core/src` part of the API
//! that `src-tauri/` and the tests use; this test lists them (module path, kind, name; methods
//! under their type) and compares the listing with the file, so a change to the API is a visible
//! line in review. After a deliberate change: `TOKENTRAY_BLESS=1 cargo test -p tokentray-core
//! --test public_api`, and commit the file.
// Tests may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

const LISTING: &str = "public-api.txt";

#[test]
fn public_api_matches_the_checked_in_listing() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let listing = public_items(&root.join("src"));
    let text = listing.join("\n") + "\n";
    let file = root.join(LISTING);
    if std::env::var_os("TOKENTRAY_BLESS").is_some() {
        std::fs::write(&file, &text).unwrap();
        return;
    }
    let kept = std::fs::read_to_string(&file).unwrap_or_default();
    if kept != text {
        let old: Vec<&str> = kept.lines().collect();
        let new: Vec<&str> = text.lines().collect();
        let added: Vec<_> = new.iter().filter(|l| !old.contains(l)).collect();
        let removed: Vec<_> = old.iter().filter(|l| !new.contains(l)).collect();
        panic!(
            "the public API of tokentray-core changed.\n added: {added:#?}\n removed: {removed:#?}\n\
             If that is deliberate: TOKENTRAY_BLESS=1 cargo test -p tokentray-core --test public_api"
        );
    }
}

/// `module::path kind name` for every `pub` declaration outside test code, sorted.
fn public_items(src: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for file in rust_files(src) {
        let module = module_path(src, &file);
        let text = std::fs::read_to_string(&file).unwrap();
        let mut owner: Option<String> = None;
        for line in text.lines() {
            if line.starts_with("#[cfg(test)]") {
                break; // test modules close the files of this crate
            }
            if line.starts_with("impl") {
                owner = impl_owner(line);
            } else if line.starts_with('}') {
                owner = None;
            }
            let trimmed = line.trim_start();
            let Some(rest) = trimmed.strip_prefix("pub ") else { continue };
            let item = describe(rest);
            let indent = line.len() - trimmed.len();
            let path = match (&owner, indent > 0) {
                (Some(ty), true) => format!("{module}::{ty}"),
                _ => module.clone(),
            };
            out.push(format!("{path} {item}"));
        }
    }
    out.sort();
    out.dedup();
    out
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !path.ends_with("testkit.rs")
                && !path.ends_with("tests.rs")
            {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn module_path(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> =
        rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    std::iter::once("tokentray_core".to_string()).chain(parts).collect::<Vec<_>>().join("::")
}

/// `impl Foo {`, `impl<'a> Foo<'a> {`, `impl Display for Foo {` → `Foo`.
fn impl_owner(line: &str) -> Option<String> {
    let head = line.trim_end_matches('{').trim();
    let head = head.rsplit(" for ").next()?;
    let head = head.trim_start_matches("impl");
    let head = if head.starts_with('<') { skip_generics(head) } else { head };
    let name: String =
        head.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!name.is_empty()).then_some(name)
}

fn skip_generics(s: &str) -> &str {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => {
                depth -= 1;
                if depth == 0 {
                    return &s[i + 1..];
                }
            }
            _ => {}
        }
    }
    s
}

/// `fn open(data_dir: …) -> …` → `fn open`; `struct Store {` → `struct Store`; a field
/// `path: PathBuf,` → `field path`; `use x::{A, B};` → `use x::{A, B}`.
fn describe(rest: &str) -> String {
    let rest = rest.trim_end_matches(['{', ';', ',']).trim();
    for kw in ["async fn", "const fn", "unsafe fn", "fn", "struct", "enum", "trait", "type", "mod"]
    {
        if let Some(name) = rest.strip_prefix(kw).and_then(|r| r.strip_prefix(' ')) {
            let name: String =
                name.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            return format!("{kw} {name}");
        }
    }
    if let Some(u) = rest.strip_prefix("use ") {
        return format!("use {u}");
    }
    for kw in ["const", "static"] {
        if let Some(name) = rest.strip_prefix(kw).and_then(|r| r.strip_prefix(' ')) {
            let name: String =
                name.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            return format!("{kw} {name}");
        }
    }
    let field: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    format!("field {field}")
}
