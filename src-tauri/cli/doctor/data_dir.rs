//! The doctor's look at the data directory (issue 16): a file in its place, a named directory
//! that does not exist, one this user may only read, and a database that cannot be opened for
//! a reason other than damage. Only real damage is ever answered with `tokentray repair`.

use std::path::Path;

use serde_json::{json, Value};
use tokentray_core::doctor::{self, Check, Problem, Status};

/// The data directory: usable, read-only (reports work, the engine cannot store), or unusable.
pub fn check(dir: &Path, named: bool) -> Check {
    let name = "data directory";
    let shown = dir.display();
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Check {
            name,
            status: Status::Fail(Problem::DataDir),
            detail: format!("{shown} is a file, not a directory"),
            fix: Some("pass --data-dir with a directory (or move the file away)".into()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && named => Check {
            name,
            status: Status::Fail(Problem::DataDir),
            detail: format!("{shown} does not exist"),
            fix: Some("check --data-dir (or TOKENTRAY_DATA_DIR / data_dir in the config); the engine creates it on first start".into()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Check {
            name,
            status: Status::Info,
            detail: format!("{shown} does not exist yet: the engine creates it on first start"),
            fix: None,
        },
        Err(e) => Check {
            name,
            status: Status::Fail(Problem::DataDir),
            detail: format!("{shown} cannot be read: {e}"),
            fix: Some(format!("check its permissions (`ls -ld {shown}`); the history in it is not damaged")),
        },
        Ok(_) => match writable(dir) {
            Ok(()) => Check { name, status: Status::Ok, detail: format!("{shown}"), fix: None },
            Err(why) => Check {
                name,
                status: Status::Warn,
                detail: format!("{shown} can only be read here ({why}): reports work, an engine cannot store new data in it"),
                fix: Some(format!("if tokentray should write here, check the mount and permissions (`findmnt -T {shown}`, `ls -ld {shown}`); the history is intact, do not move it")),
            },
        },
    }
}

/// `access(2)` with W_OK: honest about read-only mounts even for root.
#[cfg(unix)]
#[allow(unsafe_code)] // one libc call, SAFETY below
fn writable(dir: &Path) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: a valid NUL-terminated path; access(2) only reads it.
    if unsafe { libc::access(path.as_ptr(), libc::W_OK) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().to_string())
    }
}

#[cfg(not(unix))]
fn writable(dir: &Path) -> Result<(), String> {
    match std::fs::metadata(dir) {
        Ok(m) if m.permissions().readonly() => Err("read-only".into()),
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// A database that cannot be opened or checked: damage only when SQLite says so.
pub fn database_problem(db: &Path, why: String) -> Check {
    let lower = why.to_lowercase();
    let damage = ["malformed", "not a database", "corrupt", "quick_check says", "is damaged"];
    if damage.iter().any(|d| lower.contains(d)) {
        return Check {
            name: "database",
            status: Status::Fail(Problem::Database),
            detail: format!("{}: {why}", db.display()),
            fix: Some(
                "stop tokentray and run `tokentray repair`: it keeps a copy of the damaged file and recovers what SQLite can read into a new one"
                    .into(),
            ),
        };
    }
    Check {
        name: "database",
        status: Status::Fail(Problem::DataDir),
        detail: format!("{} cannot be opened: {why}", db.display()),
        fix: Some(format!(
            "check the permissions of {} and its directory (`ls -l`); it is not damaged, keep it",
            db.display()
        )),
    }
}

/// `doctor --json`: the checks in order and the exit code.
pub fn as_json(checks: &[Check]) -> Value {
    let list: Vec<Value> = checks
        .iter()
        .map(|c| {
            let (status, problem) = match c.status {
                Status::Ok => ("ok", None),
                Status::Info => ("info", None),
                Status::Warn => ("warn", None),
                Status::Fail(p) => ("fail", Some(p.exit_code())),
            };
            json!({"name": c.name, "status": status, "exit_code": problem, "detail": c.detail, "fix": c.fix})
        })
        .collect();
    json!({"checks": list, "exit_code": doctor::exit_code(checks)})
}
