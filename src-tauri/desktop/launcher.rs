//! The tray's side of the window process: start `tokentray-window` (installed next to
//! `tokentray`) on "Open dashboard", or bring it to the front if it runs; tell it about new data;
//! end it on Quit.
//!
//! The protocol is one word per line on the child's stdin: `show`, `changed data`,
//! `changed day`. End of input means the tray is gone, and the window exits with it.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::engine::Engine;
use super::{DesktopError, Launch};

/// The window's binary, looked up next to this one.
const WINDOW_BIN: &str = "tokentray-window";

/// How long Quit waits for the window process to exit on its own before ending it.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

struct Running {
    pid: u32,
    stdin: ChildStdin,
    exited: Arc<AtomicBool>,
}

pub struct Launcher {
    exe: PathBuf,
    args: Vec<OsString>,
    /// The tray set `GDK_GL=disable` for itself; the window process must not inherit it.
    unset_gdk_gl: bool,
    running: Mutex<Option<Running>>,
}

impl Launcher {
    /// The window process reads the same history and shows the engine's addresses.
    pub fn new(
        engine: &Engine,
        launch: &Launch,
        unset_gdk_gl: bool,
    ) -> Result<Launcher, DesktopError> {
        let this = std::env::current_exe()
            .map_err(|e| DesktopError::Window(format!("cannot find this program's path: {e}")))?;
        let exe = this.with_file_name(format!("{WINDOW_BIN}{}", std::env::consts::EXE_SUFFIX));
        let mut args: Vec<OsString> = vec!["--data-dir".into(), engine.data_dir.clone().into()];
        if let Some(config) = &launch.config {
            args.push("--config".into());
            args.push(std::path::absolute(config).unwrap_or_else(|_| config.clone()).into());
        }
        for (flag, addr) in [
            ("--otlp-grpc", &engine.endpoints.otlp_grpc),
            ("--otlp-http", &engine.endpoints.otlp_http),
            ("--metrics", &engine.endpoints.metrics),
        ] {
            args.push(flag.into());
            args.push(addr.into());
        }
        Ok(Launcher { exe, args, unset_gdk_gl, running: Mutex::new(None) })
    }

    /// Shows the window, starting its process if it is not running.
    pub fn open(&self) -> Result<(), DesktopError> {
        let mut running = self
            .running
            .lock()
            .map_err(|_| DesktopError::Window("internal lock poisoned".into()))?;
        if let Some(r) = running.as_mut() {
            if !r.exited.load(Ordering::SeqCst) && send(&mut r.stdin, "show") {
                return Ok(());
            }
        }
        let mut command = Command::new(&self.exe);
        command.args(&self.args).stdin(Stdio::piped());
        if self.unset_gdk_gl {
            command.env_remove("GDK_GL");
        }
        let mut child = command.spawn().map_err(|e| match e.kind() {
            // `cargo run` builds only `tokentray`; a package installs both.
            std::io::ErrorKind::NotFound => {
                DesktopError::Window(format!("{WINDOW_BIN} is missing next to this program (in {}); build both with cargo build --bins", self.exe.parent().unwrap_or(&self.exe).display()))
            }
            _ => DesktopError::Window(format!("cannot start the window process {}: {e}", self.exe.display())),
        })?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| DesktopError::Window("the window process has no stdin".into()))?;
        let pid = child.id();
        let exited = Arc::new(AtomicBool::new(false));
        let flag = exited.clone();
        // Reaps the child when its window closes, so no zombie is left behind.
        std::thread::Builder::new()
            .name("tokentray-window-reaper".into())
            .spawn(move || {
                let status = child.wait();
                flag.store(true, Ordering::SeqCst);
                tracing::debug!(?status, "window process exited");
            })
            .map_err(|e| DesktopError::Window(format!("cannot watch the window process: {e}")))?;
        tracing::debug!(pid, "window process started");
        *running = Some(Running { pid, stdin, exited });
        Ok(())
    }

    /// [`open`](Self::open) for callers that have nowhere to return an error to.
    pub fn open_logged(&self) {
        if let Err(e) = self.open() {
            tracing::warn!("cannot open the dashboard window: {e}");
        }
    }

    /// Tells an open window that the history changed (`data`) or the day rolled over (`day`).
    pub fn changed(&self, reason: &str) {
        if let Ok(mut running) = self.running.lock() {
            if let Some(r) = running.as_mut().filter(|r| !r.exited.load(Ordering::SeqCst)) {
                send(&mut r.stdin, &format!("changed {reason}"));
            }
        }
    }

    /// Ends the window process: closing its stdin asks it to exit; it is killed if it does not.
    pub fn close(&self) {
        let Some(r) = self.running.lock().ok().and_then(|mut r| r.take()) else { return };
        let Running { pid, stdin, exited } = r;
        drop(stdin);
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        while !exited.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !exited.load(Ordering::SeqCst) {
            tracing::warn!(pid, "the window process did not exit; ending it");
            // SAFETY: kill(2) on our own child, which is not reaped yet (its reaper thread is
            // still waiting), so the pid cannot have been reused.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }
}

/// Writes one protocol line; `false` if the window process is gone.
fn send(stdin: &mut ChildStdin, line: &str) -> bool {
    writeln!(stdin, "{line}").and_then(|_| stdin.flush()).is_ok()
}
