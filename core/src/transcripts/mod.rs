//! Claude Code's local transcripts as a second source beside telemetry.
//!
//! * [`discover`] — the config directories and their `projects/**/*.jsonl`.
//! * [`line`] — one line → the few facts kept ([`record`]); text is never copied.
//! * [`project`] — a session's project: the git work tree of its `cwd`, else the `cwd`.
//! * [`import`] — reads what is new in each file, resumable, into the store's transcript
//!   tables (`store::transcripts`).
//! * [`background`] — the engine's import at start (`serve`, the tray), then following
//!   the files live through file-system notifications.
//! * `requested` — an import asked of the running engine over HTTP (`tokentray import`
//!   beside a running engine): [`ImportStatus`] is what it reports.
//! * [`counting`] — the counting rule every view reads through.
//! * [`expose`] — `[transcripts] expose = true`: the transcripts' share on `/metrics` and to
//!   the team, each request once with telemetry.

pub mod background;
pub(crate) mod counting;
pub(crate) mod discover;
pub(crate) mod expose;
mod follow;
pub mod import;
pub(crate) mod line;
pub(crate) mod project;
pub(crate) mod record;
mod requested;

pub use requested::ImportStatus;
pub(crate) use requested::{RequestError, RequestedImports};

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[transcripts]` in the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TranscriptsConfig {
    /// Read Claude Code's transcripts at all.
    pub enabled: bool,
    /// Claude config directories to read instead of `CLAUDE_CONFIG_DIR` / the defaults.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<PathBuf>,
    /// Also carry transcript-only requests to `/metrics` and forwarding (off: only telemetry).
    pub expose: bool,
    /// With `expose`: how old a transcript request must be before it is exposed, so that
    /// telemetry for it, if any, has arrived (seconds; telemetry sends within a minute).
    pub settle_seconds: u64,
}

impl Default for TranscriptsConfig {
    fn default() -> Self {
        TranscriptsConfig { enabled: true, paths: Vec::new(), expose: false, settle_seconds: 300 }
    }
}

/// Why reading transcripts into the store failed.
#[derive(Debug, thiserror::Error)]
pub enum TranscriptError {
    /// The database could not be opened or written.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A transcript file or directory could not be opened or read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error message.
        reason: String,
    },
}

#[cfg(test)]
mod tests;
