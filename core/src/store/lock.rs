//! One engine per data directory.
//!
//! The process that keeps running state (the writer thread of a [`super::Store`]: `serve`, the
//! tray's engine) holds an exclusive `flock` on `engine.lock` in the data directory for as long
//! as it runs. Two engines on one database would each keep their own in-memory running totals
//! and overwrite each other's series state, losing acknowledged data; the lock makes the second
//! one fail at start instead. The file also says who holds it (pid, addresses), so that a
//! refusal, `doctor` and a tray that finds the engine running elsewhere can name it.
//!
//! The kernel drops the lock when the process dies (also on `kill -9`), so a stale file never
//! blocks a start: only a held lock counts, the file's contents are a description.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the lock inside the data directory.
pub const LOCK_FILE: &str = "engine.lock";

/// Who holds the data directory, as its engine wrote it into the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EngineInfo {
    /// The engine's process id.
    pub pid: u32,
    /// Unix seconds at which the engine opened the store.
    pub started_at: i64,
    /// The OTLP/gRPC listener's address (`127.0.0.1:4317`), once the engine announced its
    /// listeners; `None` until then or when not bound.
    #[serde(default)]
    pub otlp_grpc: Option<String>,
    /// The OTLP/HTTP listener's address (`127.0.0.1:4318`); `None` until announced or unbound.
    #[serde(default)]
    pub otlp_http: Option<String>,
    /// The Prometheus `/metrics` listener's address; `None` until announced or unbound.
    #[serde(default)]
    pub metrics: Option<String>,
}

impl std::fmt::Display for EngineInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {}", self.pid)?;
        let addrs = [
            ("otlp-grpc", &self.otlp_grpc),
            ("otlp-http", &self.otlp_http),
            ("metrics", &self.metrics),
        ];
        for (name, addr) in addrs {
            if let Some(addr) = addr {
                write!(f, " {name}={addr}")?;
            }
        }
        Ok(())
    }
}

/// Why an engine could not take the data directory's lock.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LockError {
    /// Another process (an engine) holds the lock on this data directory.
    #[error(
        "another tokentray engine ({}) already runs on the data directory {}: stop it first, or give this one another --data-dir",
        held_by.as_ref().map_or_else(|| "pid unknown".to_string(), |i| i.to_string()),
        data_dir.display()
    )]
    Held {
        /// The data directory whose lock is taken.
        data_dir: PathBuf,
        /// Who holds it, from the lock file; `None` when the file could not be read or parsed.
        held_by: Option<EngineInfo>,
    },
    /// The lock file could not be opened, locked or written.
    #[error("cannot use the lock file {path}: {reason}")]
    Io {
        /// The lock file (`engine.lock` in the data directory).
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
}

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub(crate) struct EngineLock {
    file: File,
    path: PathBuf,
    info: EngineInfo,
}

impl EngineLock {
    /// Takes the data directory's lock, or says who holds it.
    pub(crate) fn acquire(data_dir: &Path) -> Result<EngineLock, LockError> {
        let path = data_dir.join(LOCK_FILE);
        let io = |e: std::io::Error| LockError::Io { path: path.clone(), reason: e.to_string() };
        // Not truncated on open: until we hold the lock, the contents are the holder's.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Held {
                    data_dir: data_dir.to_path_buf(),
                    held_by: read_info(&path),
                })
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let info = EngineInfo {
            pid: std::process::id(),
            started_at: chrono::Utc::now().timestamp(),
            ..EngineInfo::default()
        };
        let mut lock = EngineLock { file, path, info };
        lock.write()?;
        Ok(lock)
    }

    /// Records the listeners this engine bound, for `doctor` and for other processes.
    pub(crate) fn announce(
        &mut self,
        otlp_grpc: Option<String>,
        otlp_http: Option<String>,
        metrics: Option<String>,
    ) -> Result<(), LockError> {
        self.info.otlp_grpc = otlp_grpc;
        self.info.otlp_http = otlp_http;
        self.info.metrics = metrics;
        self.write()
    }

    fn write(&mut self) -> Result<(), LockError> {
        let io =
            |e: std::io::Error| LockError::Io { path: self.path.clone(), reason: e.to_string() };
        let json = serde_json::to_vec(&self.info)
            .map_err(|e| LockError::Io { path: self.path.clone(), reason: e.to_string() })?;
        self.file.set_len(0).map_err(io)?;
        self.file.seek(SeekFrom::Start(0)).map_err(io)?;
        self.file.write_all(&json).map_err(io)?;
        self.file.flush().map_err(io)
    }
}

/// The engine that holds `data_dir`, if one runs. A lock file left by an engine that ended
/// (also one killed) is not held and gives `None`.
pub fn running_engine(data_dir: &Path) -> Option<EngineInfo> {
    let path = data_dir.join(LOCK_FILE);
    let file = File::open(&path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => {
            // Nobody holds it: let go at once, so we never keep an engine from starting.
            let _ = file.unlock();
            None
        }
        Err(TryLockError::WouldBlock) => Some(read_info(&path).unwrap_or_default()),
        Err(TryLockError::Error(_)) => None,
    }
}

fn read_info(path: &Path) -> Option<EngineInfo> {
    // The holder rewrites the file in place; a read between its truncate and its write sees
    // nothing, so try again once.
    for _ in 0..2 {
        let mut text = String::new();
        if File::open(path).and_then(|mut f| f.read_to_string(&mut text)).is_ok() {
            if let Ok(info) = serde_json::from_str(&text) {
                return Some(info);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_engine_is_refused_with_the_first_ones_pid_and_addresses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut first = EngineLock::acquire(dir.path()).expect("first");
        first
            .announce(Some("127.0.0.1:4317".into()), Some("127.0.0.1:4318".into()), None)
            .expect("announce");
        let running = running_engine(dir.path()).expect("held");
        assert_eq!(running.pid, std::process::id());
        assert_eq!(running.otlp_grpc.as_deref(), Some("127.0.0.1:4317"));
        match EngineLock::acquire(dir.path()) {
            Err(e @ LockError::Held { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(&format!("pid {}", std::process::id())), "{msg}");
                assert!(msg.contains("otlp-grpc=127.0.0.1:4317"), "{msg}");
            }
            other => panic!("expected Held, got {other:?}"),
        }
        drop(first);
        assert_eq!(running_engine(dir.path()), None, "released on drop");
        let _again = EngineLock::acquire(dir.path()).expect("free again");
    }
}
