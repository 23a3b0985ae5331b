//! What a transcript line contributes: numbers, ids, model, time, cwd, branch and PR. Nothing
//! else of a transcript has a place here.

/// One API request (an `assistant` line; the lines of its other content blocks repeat it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub request_id: String,
    pub message_id: String,
    pub session_id: String,
    pub model: String,
    pub time_ns: i64,
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    /// Served in fast mode (`usage.speed = "fast"`).
    pub fast: bool,
}

/// An API error Claude Code showed (`<synthetic>` / `isApiErrorMessage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub session_id: String,
    /// `requestId` + line `uuid`: the same line in two copies of a file counts once.
    pub key: String,
    pub time_ns: i64,
}

/// Where and on which branch a session ran (from any line carrying `cwd`; the import folds
/// successive lines naming the same place into one, from `time_ns` to `last_ns`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionContext {
    pub session_id: String,
    pub time_ns: i64,
    pub last_ns: i64,
    pub cwd: String,
    pub git_branch: Option<String>,
}

/// Claude Code's own cost so far, per model (a `cost-state` line).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CostState {
    pub session_id: String,
    pub models: Vec<(String, f64)>,
}

/// A pull request the session opened (`pr-link`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PrLink {
    pub session_id: String,
    pub number: i64,
    pub url: Option<String>,
    pub repository: Option<String>,
}

/// Everything one line says; most lines say nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Line {
    pub request: Option<Request>,
    pub api_error: Option<ApiError>,
    pub context: Option<SessionContext>,
    pub cost_state: Option<CostState>,
    pub pr_link: Option<PrLink>,
}
