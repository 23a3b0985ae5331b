//! One headless desktop session per test, started by the test itself so that plain `cargo test`
//! works: the test re-runs itself (`<test binary> <name> --exact`) under
//! `xvfb-run -a … dbus-run-session --`, with a temporary HOME and XDG_RUNTIME_DIR, and asserts
//! that inner run passed. Nothing of the developer's desktop (bus, display, autostart folder,
//! keyring) is touched.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Set in the inner run.
const INNER: &str = "TOKENTRAY_DESKTOP_SESSION";
/// A desktop test must finish well within this (the issue asks for under ~2 minutes).
const SESSION_TIMEOUT: Duration = Duration::from_secs(170);
const SETUP_HINT: &str = "install them with tests/setup-desktop.sh (run by tests/setup.sh and CI)";

/// Tools a test needs on PATH.
pub fn require(tools: &[&str]) {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !on_path(t)).collect();
    assert!(missing.is_empty(), "desktop tests need {} on PATH: {SETUP_HINT}", missing.join(", "));
}

pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// `true` inside the session (the test body runs); `false` after running the test in a fresh
/// session, which has then passed (a failure panics here with the inner output).
pub fn enter(test_name: &str, extra_tools: &[&str]) -> bool {
    enter_with_timeout(test_name, extra_tools, SESSION_TIMEOUT)
}

/// [`enter`] with another time limit (measurements that idle on purpose).
pub fn enter_with_timeout(test_name: &str, extra_tools: &[&str], timeout: Duration) -> bool {
    if std::env::var_os(INNER).is_some() {
        return true;
    }
    let mut tools = vec!["xvfb-run", "Xvfb", "xauth", "dbus-run-session", "dbus-daemon"];
    tools.extend_from_slice(extra_tools);
    require(&tools);

    let home =
        tempfile::Builder::new().prefix("tokentray-desktop-home-").tempdir().expect("temp HOME");
    let runtime = tempfile::Builder::new()
        .prefix("tokentray-desktop-run-")
        .tempdir()
        .expect("temp XDG_RUNTIME_DIR");
    std::fs::set_permissions(runtime.path(), std::fs::Permissions::from_mode(0o700))
        .expect("chmod 700 XDG_RUNTIME_DIR");
    let exe = std::env::current_exe().expect("current test binary");

    let mut cmd = Command::new("xvfb-run");
    cmd.args(["-a", "-s", "-screen 0 1400x1000x24 -nolisten tcp", "dbus-run-session", "--"])
        .arg(&exe)
        // `--include-ignored`: the outer run already chose this test (measurements are ignored).
        .args([test_name, "--exact", "--nocapture", "--test-threads=1", "--include-ignored"])
        .env(INNER, "1")
        .env("HOME", home.path())
        .env("XDG_RUNTIME_DIR", runtime.path())
        .env("XDG_CONFIG_HOME", home.path().join(".config"))
        .env("XDG_DATA_HOME", home.path().join(".local/share"))
        .env("XDG_CACHE_HOME", home.path().join(".cache"))
        .env("NO_AT_BRIDGE", "1")
        .env("GDK_BACKEND", "x11")
        // A predictable locale for the page's number formats ("$1.75"). WebKit's ICU reads the
        // variable itself, so no generated glibc locale is needed (GTK then falls back to C).
        .env("LANG", "en_US.UTF-8")
        .env_remove("LC_ALL")
        .env_remove("LANGUAGE")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("DISPLAY")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own process group: whatever the session leaves behind is ended with it, and nothing
        // else is.
        .process_group(0);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("start xvfb-run: {e}; {SETUP_HINT}"));
    let pgid = child.id();
    let output = Arc::new(Mutex::new(String::new()));
    let readers: Vec<_> = [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|mut stream| {
        let out = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                out.lock().expect("output lock").push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    })
    .collect();

    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the session") {
            break Some(status);
        }
        if started.elapsed() > timeout {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Anything still running in the session's process group (it should be empty by now).
    super::proc::kill_group(pgid);
    if status.is_none() {
        let _ = child.wait();
    }
    for r in readers {
        let _ = r.join();
    }
    let text = output.lock().expect("output lock").clone();
    match status {
        // A name that matched no test would "pass" with nothing run: require that it ran.
        Some(s) if s.success() && text.contains("test result: ok. 1 passed") => {
            println!(
                "--- {test_name} in xvfb-run + dbus-run-session ({:.1}s) ---\n{text}",
                started.elapsed().as_secs_f64()
            );
        }
        Some(s) if s.success() => {
            panic!("{test_name} did not run inside its desktop session (no such test?):\n{text}")
        }
        Some(s) => panic!("{test_name} failed inside its desktop session ({s}):\n{text}"),
        None => panic!(
            "{test_name} did not finish within {timeout:?} inside its desktop session:\n{text}"
        ),
    }
    false
}

/// Starts GNOME Keyring's Secret Service in this session with an unlocked login keyring, as a
/// desktop login does (without the unlock every keychain call fails with `NoStorageAccess`).
/// The daemon stays in the session's process group and ends with it.
pub fn unlock_keyring() {
    let mut child = Command::new("gnome-keyring-daemon")
        .args(["--unlock", "--components=secrets"])
        .stdin(Stdio::piped())
        // The daemon it forks keeps inherited descriptors open: reading them would never end.
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start gnome-keyring-daemon: {e}; {SETUP_HINT}"));
    if let Some(mut stdin) = child.stdin.take() {
        std::io::Write::write_all(&mut stdin, b"test-keyring-password")
            .expect("password to gnome-keyring-daemon");
    }
    let status = child.wait().expect("wait for gnome-keyring-daemon");
    assert!(status.success(), "gnome-keyring-daemon --unlock: {status}");
}
