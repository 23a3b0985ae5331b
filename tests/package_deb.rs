//! The Debian package, built exactly as the README documents it (the Tauri CLI that
//! tests/setup.sh installs into tests/.cache, `tauri build --bundles deb`), then checked with the
//! tools a packager would use: `dpkg-deb --info` / `--contents`, the packaged binary run from
//! an extracted tree, and `lintian` with no errors.
//!
//! The release build is the expensive part: measured cold on 2 cores at 18 CPU-minutes (23 min
//! wall-clock while other builds shared the machine, so about 10-12 min alone); warm, only the
//! app crate is rebuilt. It runs `nice`d so that tests running beside it keep their timing.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::SystemTime;

const PKG: &str = "tokentray";
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `target/` as this test was built with (honours CARGO_TARGET_DIR): the parent of the debug
/// binary's profile directory.
fn target_dir() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_tokentray"));
    bin.parent()
        .and_then(Path::parent)
        .expect("the test binary lives in <target>/<profile>/")
        .to_path_buf()
}

/// A tool the test needs, or a failure that says how to get it.
fn require(program: &Path, what: &str) {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(found, "{} not found ({what}): run tests/setup.sh", program.display());
}

fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("running {shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        tail(&String::from_utf8_lossy(&out.stdout)),
        tail(&String::from_utf8_lossy(&out.stderr))
    );
    out
}

/// The end of a long build log is where the error is.
fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds the .deb with the documented command and returns its path.
fn build_deb() -> PathBuf {
    let tauri = repo().join("tests/.cache/tauri-cli/node_modules/.bin/tauri");
    require(&tauri, "the Tauri CLI from npm, pinned in tests/setup.sh");
    let arch = text(&run(Command::new("dpkg").arg("--print-architecture"))).trim().to_string();
    let deb = target_dir().join("release/bundle/deb").join(format!("{PKG}_{VERSION}_{arch}.deb"));
    let started = SystemTime::now();
    run(Command::new("nice")
        .args(["-n", "10"])
        .arg(&tauri)
        .args(["build", "--bundles", "deb", "--ci"])
        .current_dir(repo())
        // What cargo sets for this test process describes the test build, not the release
        // build the CLI starts.
        .env_remove("CARGO_PRIMARY_PACKAGE")
        .env_remove("CARGO_BIN_NAME")
        .env_remove("CARGO_CRATE_NAME"));
    let modified = std::fs::metadata(&deb).and_then(|m| m.modified()).unwrap_or_else(|e| {
        panic!("`tauri build --bundles deb` succeeded but {} is not there: {e}", deb.display())
    });
    assert!(modified >= started, "{} was not rewritten by this build", deb.display());
    deb
}

fn field<'a>(info: &'a str, name: &str) -> &'a str {
    info.lines()
        .find_map(|l| l.trim_start().strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {name} field in dpkg-deb --info:\n{info}"))
}

#[test]
fn deb_is_complete_runs_and_is_lintian_clean() {
    require(Path::new("dpkg-deb"), "Debian package dpkg");
    require(Path::new("lintian"), "Debian package lintian");
    let deb = build_deb();

    // Control data: what apt shows and resolves.
    let info = text(&run(Command::new("dpkg-deb").arg("--info").arg(&deb)));
    assert_eq!(field(&info, "Package"), PKG, "{info}");
    assert_eq!(field(&info, "Version"), VERSION, "the package version is the crate's: {info}");
    assert_eq!(field(&info, "Section"), "devel", "{info}");
    assert!(field(&info, "Maintainer").contains('@'), "a Maintainer with an address: {info}");
    let depends = field(&info, "Depends");
    for lib in ["libc6", "libwebkit2gtk-4.1-0", "libgtk-3-0", "libayatana-appindicator3-1"] {
        assert!(
            depends.split(',').any(|d| d.trim().starts_with(lib)),
            "Depends lists {lib}: {depends}"
        );
    }

    // Files: the binary, the launcher entry, icons, the Debian docs.
    let contents = text(&run(Command::new("dpkg-deb").arg("--contents").arg(&deb)));
    // Lines end in the path without a leading `/` (the Tauri bundler writes no `./`).
    let entry = |path: &str| contents.lines().find(|l| l.ends_with(&format!(" {}", &path[1..])));
    let bin = entry("/usr/bin/tokentray")
        .unwrap_or_else(|| panic!("no /usr/bin/tokentray in:\n{contents}"));
    assert!(bin.starts_with("-rwxr-xr-x 0/0 "), "the binary is executable and root-owned: {bin}");
    let window = entry("/usr/bin/tokentray-window").unwrap_or_else(|| {
        panic!("no /usr/bin/tokentray-window (the dashboard window) in:\n{contents}")
    });
    assert!(
        window.starts_with("-rwxr-xr-x 0/0 "),
        "the window binary is executable and root-owned: {window}"
    );
    let bins: Vec<&str> =
        contents.lines().filter(|l| l.contains(" usr/bin/") && !l.ends_with('/')).collect();
    assert_eq!(bins.len(), 2, "only tokentray and tokentray-window in /usr/bin (the benchmark load generator is not shipped): {bins:?}");
    for path in [
        "/usr/share/applications/tokentray.desktop",
        "/usr/share/doc/tokentray/copyright",
        "/usr/share/doc/tokentray/changelog.gz",
    ] {
        assert!(entry(path).is_some(), "no {path} in:\n{contents}");
    }
    for size in ["32x32", "128x128", "256x256", "512x512"] {
        let icon = format!("/usr/share/icons/hicolor/{size}/apps/tokentray.png");
        assert!(entry(&icon).is_some(), "no {icon} in:\n{contents}");
    }

    // The packaged tree works: the binary runs from it, the launcher starts it by name.
    let root = tempfile::Builder::new().prefix("tokentray-deb-").tempdir().expect("tempdir");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(root.path()));
    let version = text(&run(Command::new(root.path().join("usr/bin/tokentray")).arg("--version")));
    assert_eq!(
        version.trim(),
        format!("tokentray {VERSION}"),
        "the packaged binary prints its version"
    );
    let version =
        text(&run(Command::new(root.path().join("usr/bin/tokentray-window")).arg("--version")));
    assert_eq!(
        version.trim(),
        format!("tokentray-window {VERSION}"),
        "the packaged window binary prints its version"
    );
    // The tray is always running: its binary must not load WebKit (only the window's does).
    let libs = |bin: &str| text(&run(Command::new("ldd").arg(root.path().join(bin))));
    let tray_libs = libs("usr/bin/tokentray");
    assert!(
        tray_libs.contains("libgtk-3.so")
            && !tray_libs.contains("webkit")
            && !tray_libs.contains("javascriptcore"),
        "the tray links GTK but not WebKit:\n{tray_libs}"
    );
    assert!(
        libs("usr/bin/tokentray-window").contains("libwebkit2gtk-4.1.so"),
        "the window links WebKit"
    );
    let desktop =
        std::fs::read_to_string(root.path().join("usr/share/applications/tokentray.desktop"))
            .expect("read .desktop");
    for line in ["Type=Application", "Exec=tokentray", "Icon=tokentray", "Name=tokentray"] {
        assert!(desktop.lines().any(|l| l == line), "{line} in the .desktop entry:\n{desktop}");
    }
    assert!(
        desktop.lines().any(|l| l.starts_with("Categories=") && l.contains("Development;")),
        "a Categories line:\n{desktop}"
    );

    // lintian: no errors. Warnings and notes are printed for whoever reads the log.
    let out = Command::new("lintian")
        .args(["--tag-display-limit", "0"])
        .arg(&deb)
        .output()
        .expect("run lintian");
    let report =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("lintian {}:\n{report}", deb.display());
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(errors.is_empty(), "lintian errors:\n{}", errors.join("\n"));
}
