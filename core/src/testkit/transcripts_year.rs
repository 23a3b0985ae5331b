//! A year (or any number of days) of a heavy Claude Code user's local transcripts, written as
//! the real CLI writes them (`projects/<slug>/<session-id>.jsonl`, one JSON object a line, line
//! shapes of `shared/reference/claude-code-transcripts.md`), with the totals they add up to.
//! Shared by the exactness test (`tests/transcripts_cli.rs`) and `tokentray-loadgen
//! transcripts`, so BENCHMARKS.md's transcript figures and the test are about the same files.
//!
//! The default shape (issue 15's benchmark): 12 sessions a day over 24 projects, 30 requests a
//! session, so a year is 4,380 files and 131,400 requests, about 520 MB. Per request: a `user`
//! line (a tool result with the user's text), an `api-request` line, one `assistant` line per
//! content block (every second request has a text and a `tool_use` block: two lines, the same
//! `message.id`, `requestId` and usage), an `attachment` every third request; per session a
//! `queue-operation`, the prompt, an environment `attachment`, an `api-request-shape`, an
//! `atis-latch`, a `last-prompt`, and a `cost-state` (Claude Code's own cost per model, equal to
//! the price table's) except in every tenth session (killed before it wrote one: priced from
//! the table). Every 250th request is followed by an API error line (`<synthetic>`, not a
//! request), every seventh request is a sidechain (subagent) request. Tokens stay under the
//! long-context threshold, so every price table agrees on the money.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::pricing::{PriceTable, Usage, CLAUDE_CODE};

const DAY_NS: u64 = 86_400 * 1_000_000_000;
const HOUR_NS: u64 = 3_600 * 1_000_000_000;
/// Between two requests of a session.
const REQUEST_SPACING_NS: u64 = 40 * 1_000_000_000;

/// The models a session runs on, by session index (all in every price table).
pub const MODELS: [&str; 3] = ["claude-sonnet-4-5", "claude-opus-4-5", "claude-haiku-4-5"];

/// The shape of a generated transcript history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TranscriptPlan {
    /// Days of history.
    pub days: u64,
    /// Sessions (files) a day.
    pub sessions_per_day: u64,
    /// API requests a session.
    pub requests_per_session: u64,
    /// Distinct working directories (projects) the sessions are spread over.
    pub projects: u64,
    /// The history ends an hour before this (unix ns).
    pub end_ns: u64,
}

/// What a generated history adds up to, to check an import against.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TranscriptTotals {
    /// Session files written (one per session).
    pub files: u64,
    /// Sessions.
    pub sessions: u64,
    /// API requests, each once however many lines repeat it.
    pub requests: u64,
    /// API error lines (not requests).
    pub api_errors: u64,
    /// Lines written.
    pub lines: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Input tokens.
    pub input: u64,
    /// Output tokens.
    pub output: u64,
    /// Cache-read tokens.
    pub cache_read: u64,
    /// Cache-write tokens (5-minute and 1-hour).
    pub cache_creation: u64,
    /// The money: Claude Code's own (`cost-state`) where written, which equals the embedded
    /// price table's figure, and the table's for the sessions without one.
    pub cost_usd: f64,
    /// Projects that have at least one session.
    pub projects: u64,
}

impl TranscriptPlan {
    /// Issue 15's heavy user over `days` days ending at `end_ns`.
    pub fn heavy_user(days: u64, end_ns: u64) -> TranscriptPlan {
        TranscriptPlan {
            days,
            sessions_per_day: 12,
            requests_per_session: 30,
            projects: 24,
            end_ns,
        }
    }

    /// Sessions in the whole history.
    pub fn sessions(&self) -> u64 {
        self.days * self.sessions_per_day
    }

    /// When the first session starts.
    pub fn start_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.days * DAY_NS)
    }

    /// Writes every session under `config_dir/projects/` (a Claude Code config directory, as
    /// `~/.claude`), and returns what they add up to.
    pub fn write(&self, config_dir: &Path) -> io::Result<TranscriptTotals> {
        let prices = PriceTable::embedded();
        let total = self.sessions().max(1);
        let session_ns = self.requests_per_session * REQUEST_SPACING_NS;
        let spacing = (self.days * DAY_NS).saturating_sub(HOUR_NS + session_ns) / total;
        let mut totals = TranscriptTotals::default();
        let mut used_projects = std::collections::BTreeSet::new();
        for i in 0..self.sessions() {
            let project = i.wrapping_mul(7) % self.projects.max(1);
            used_projects.insert(project);
            let s = Session {
                index: i,
                start_ns: self.start_ns() + i * spacing,
                requests: self.requests_per_session,
                project,
            };
            let dir = config_dir.join("projects").join(s.slug());
            std::fs::create_dir_all(&dir)?;
            let file = std::fs::File::create(dir.join(format!("{}.jsonl", s.id())))?;
            let mut out =
                Counting { inner: BufWriter::with_capacity(1 << 16, file), lines: 0, bytes: 0 };
            s.write(&mut out, &prices, &mut totals)?;
            out.inner.flush()?;
            totals.files += 1;
            totals.sessions += 1;
            totals.lines += out.lines;
            totals.bytes += out.bytes;
        }
        totals.projects = used_projects.len() as u64;
        Ok(totals)
    }
}

/// A writer that counts lines and bytes.
struct Counting<W: Write> {
    inner: W,
    lines: u64,
    bytes: u64,
}

impl<W: Write> Counting<W> {
    fn line(&mut self, text: &str) -> io::Result<()> {
        self.inner.write_all(text.as_bytes())?;
        self.inner.write_all(b"\n")?;
        self.lines += 1;
        self.bytes += text.len() as u64 + 1;
        Ok(())
    }
}

/// A deterministic pseudo-random number of (a, b) (splitmix64).
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_add(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn in_range(a: u64, b: u64, lo: u64, hi: u64) -> u64 {
    lo + mix(a, b) % (hi - lo + 1)
}

fn timestamp(ns: u64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns as i64).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn uuid(a: u64, b: u64) -> String {
    let x = mix(a, b);
    let y = mix(b, a ^ 0x5555);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        x >> 32,
        (x >> 16) & 0xffff,
        x & 0xfff,
        y >> 52,
        y & 0xffff_ffff_ffff
    )
}

/// Text the user and the model wrote: never to be stored (plain ASCII, no JSON escapes).
fn filler(seed: u64, len: usize) -> String {
    const WORDS: [&str; 16] = [
        "fn", "let", "value", "parse", "the", "config", "error", "return", "match", "store",
        "request", "token", "session", "import", "line", "report",
    ];
    let mut s = String::with_capacity(len + 16);
    let mut n = 0u64;
    while s.len() < len {
        s.push_str(WORDS[(mix(seed, n) % 16) as usize]);
        s.push(' ');
        n += 1;
    }
    s.truncate(len);
    s
}

struct Session {
    index: u64,
    start_ns: u64,
    requests: u64,
    project: u64,
}

impl Session {
    fn id(&self) -> String {
        uuid(self.index, 0x5e55)
    }

    fn cwd(&self) -> String {
        format!("/home/dev/projects/project-{:02}", self.project)
    }

    fn slug(&self) -> String {
        self.cwd().replace(['/', '.'], "-")
    }

    fn branch(&self) -> String {
        match self.index % 4 {
            0 => "main".to_string(),
            n => format!("feature-{}", (self.index / 4 + n) % 9),
        }
    }

    fn model(&self) -> &'static str {
        // Mostly Sonnet, some Opus, a little Haiku.
        match self.index % 10 {
            0..=5 => MODELS[0],
            6..=8 => MODELS[1],
            _ => MODELS[2],
        }
    }

    fn common(&self, ns: u64, uuid_: &str, parent: &str, sidechain: bool) -> String {
        format!(
            "\"parentUuid\":{parent},\"isSidechain\":{sidechain},\"uuid\":\"{uuid_}\",\"timestamp\":\"{}\",\"userType\":\"external\",\"entrypoint\":\"cli\",\"cwd\":\"{}\",\"sessionId\":\"{}\",\"version\":\"2.1.330\",\"gitBranch\":\"{}\"",
            timestamp(ns),
            self.cwd(),
            self.id(),
            self.branch()
        )
    }

    fn write<W: Write>(
        &self,
        out: &mut Counting<W>,
        prices: &PriceTable,
        totals: &mut TranscriptTotals,
    ) -> io::Result<()> {
        let id = self.id();
        let model = self.model();
        let t0 = self.start_ns;
        let prompt = filler(self.index, 180);
        out.line(&format!(
            "{{\"type\":\"queue-operation\",\"operation\":\"enqueue\",\"timestamp\":\"{}\",\"sessionId\":\"{id}\",\"content\":\"{prompt}\"}}",
            timestamp(t0)
        ))?;
        let mut parent = uuid(self.index, 1_000_000);
        out.line(&format!(
            "{{{},\"type\":\"user\",\"promptId\":\"{}\",\"message\":{{\"role\":\"user\",\"content\":\"{prompt}\"}},\"permissionMode\":\"default\"}}",
            self.common(t0, &parent, "null", false),
            uuid(self.index, 1_000_001)
        ))?;
        let env = uuid(self.index, 1_000_002);
        out.line(&format!(
            "{{{},\"attachment\":{{\"type\":\"environment\",\"snapshot\":{{\"workingDirectory\":\"{}\",\"isGitRepo\":true,\"platform\":\"linux\",\"shell\":\"bash\"}}}},\"type\":\"attachment\",\"rendered\":[{{\"content\":\"{}\"}}],\"renderedRole\":\"system\"}}",
            self.common(t0, &env, &format!("\"{parent}\""), false),
            self.cwd(),
            filler(self.index ^ 0xe4, 900)
        ))?;
        out.line(&format!("{{\"type\":\"atis-latch\",\"atis\":\"\",\"sessionId\":\"{id}\"}}"))?;
        out.line(&format!(
            "{{\"type\":\"api-request-shape\",\"sessionId\":\"{id}\",\"shapeHash\":\"{:016x}\",\"timestamp\":\"{}\",\"version\":\"2.1.330\",\"shape\":{{\"system\":[{{\"type\":\"text\",\"text\":\"{}\"}}]}}}}",
            mix(self.index, 7),
            timestamp(t0),
            filler(self.index ^ 0x5a, 12_000)
        ))?;

        let mut cost_by_model = 0.0;
        let mut tokens = [0u64; 4];
        for r in 0..self.requests {
            let ns = t0 + r * REQUEST_SPACING_NS + 1_000_000;
            let seed = self.index * 1_000 + r;
            let usage = Usage {
                input: in_range(seed, 1, 3, 60),
                output: in_range(seed, 2, 40, 2_500),
                cache_read: in_range(seed, 3, 15_000, 150_000),
                cache_write_5m: in_range(seed, 4, 200, 6_000),
                cache_write_1h: if r % 5 == 0 { in_range(seed, 5, 100, 2_000) } else { 0 },
                fast: false,
            };
            let sidechain = r % 7 == 3;
            // The tool result (the user's side) the request answers.
            let user = uuid(seed, 11);
            out.line(&format!(
                "{{{},\"type\":\"user\",\"message\":{{\"role\":\"user\",\"content\":[{{\"tool_use_id\":\"toolu_{:016x}\",\"type\":\"tool_result\",\"content\":\"{}\",\"is_error\":false}}]}},\"toolUseResult\":{{\"stdout\":\"{}\",\"stderr\":\"\",\"interrupted\":false}}}}",
                self.common(ns - 500_000, &user, &format!("\"{parent}\""), sidechain),
                mix(seed, 12),
                filler(seed ^ 0x77, 700),
                filler(seed ^ 0x78, 500)
            ))?;
            let request_ref = uuid(seed, 13);
            out.line(&format!(
                "{{\"type\":\"api-request\",\"sessionId\":\"{id}\",\"id\":\"{request_ref}\",\"timestamp\":\"{}\",\"version\":\"2.1.330\",\"querySource\":\"repl_main_thread\",\"params\":{{\"model\":\"{model}\",\"betas\":[\"claude-code-20250219\",\"interleaved-thinking-2025-05-14\"],\"max_tokens\":32000}},\"keep\":0,\"requestDigest\":\"{:016x}{:016x}\"}}",
                timestamp(ns - 400_000),
                mix(seed, 14),
                mix(seed, 15)
            ))?;
            let request_id = format!("req_{:016x}{:08x}", mix(seed, 16), mix(seed, 17) >> 32);
            let message_id = format!("msg_{:016x}{:08x}", mix(seed, 18), mix(seed, 19) >> 32);
            let usage_json = format!(
                "{{\"input_tokens\":{},\"cache_creation_input_tokens\":{},\"cache_read_input_tokens\":{},\"output_tokens\":{},\"output_tokens_details\":{{\"thinking_tokens\":0}},\"server_tool_use\":{{\"web_search_requests\":0,\"web_fetch_requests\":0}},\"service_tier\":\"standard\",\"cache_creation\":{{\"ephemeral_1h_input_tokens\":{},\"ephemeral_5m_input_tokens\":{}}},\"speed\":\"standard\"}}",
                usage.input,
                usage.cache_write_5m + usage.cache_write_1h,
                usage.cache_read,
                usage.output,
                usage.cache_write_1h,
                usage.cache_write_5m
            );
            // One line per content block: a text block, and a tool_use block every second request.
            let mut blocks =
                vec![format!("{{\"type\":\"text\",\"text\":\"{}\"}}", filler(seed ^ 0x99, 600))];
            if r % 2 == 0 {
                blocks.push(format!(
                    "{{\"type\":\"tool_use\",\"id\":\"toolu_{:016x}\",\"name\":\"Bash\",\"input\":{{\"command\":\"{}\",\"description\":\"Run it\"}}}}",
                    mix(seed, 20),
                    filler(seed ^ 0x9a, 300)
                ));
            }
            for (b, block) in blocks.iter().enumerate() {
                let line_uuid = uuid(seed, 30 + b as u64);
                out.line(&format!(
                    "{{{},\"message\":{{\"id\":\"{message_id}\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"{model}\",\"content\":[{block}],\"stop_reason\":\"{}\",\"stop_sequence\":null,\"usage\":{usage_json}}},\"apiBlockIndex\":{b},\"requestId\":\"{request_id}\",\"requestRef\":\"{request_ref}\",\"requestedModel\":\"{model}\",\"type\":\"assistant\"}}",
                    self.common(ns, &line_uuid, &format!("\"{user}\""), sidechain),
                    if blocks.len() == 2 { "tool_use" } else { "end_turn" }
                ))?;
                parent = line_uuid;
            }
            if r % 3 == 1 {
                out.line(&format!(
                    "{{{},\"attachment\":{{\"type\":\"todo_reminder\",\"itemCount\":2}},\"type\":\"attachment\",\"rendered\":[{{\"content\":\"{}\"}}],\"renderedRole\":\"system\"}}",
                    self.common(ns + 100_000, &uuid(seed, 40), &format!("\"{parent}\""), sidechain),
                    filler(seed ^ 0xab, 700)
                ))?;
            }
            if seed % 250 == 249 {
                out.line(&format!(
                    "{{{},\"message\":{{\"id\":\"{}\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"<synthetic>\",\"content\":[{{\"type\":\"text\",\"text\":\"API Error: 500\"}}],\"usage\":{{\"input_tokens\":0,\"output_tokens\":0,\"cache_read_input_tokens\":0,\"cache_creation_input_tokens\":0}}}},\"isApiErrorMessage\":true,\"requestId\":\"req_err_{seed:x}\",\"type\":\"assistant\"}}",
                    self.common(ns + 200_000, &uuid(seed, 41), &format!("\"{parent}\""), sidechain),
                    uuid(seed, 42)
                ))?;
                totals.api_errors += 1;
            }
            // The embedded table's price: Claude Code's own cost in the cost-state below.
            cost_by_model += prices.cost(CLAUDE_CODE, model, &usage).unwrap_or(0.0);
            tokens[0] += usage.input;
            tokens[1] += usage.output;
            tokens[2] += usage.cache_read;
            tokens[3] += usage.cache_write_5m + usage.cache_write_1h;
            totals.requests += 1;
        }
        totals.input += tokens[0];
        totals.output += tokens[1];
        totals.cache_read += tokens[2];
        totals.cache_creation += tokens[3];
        totals.cost_usd += cost_by_model;
        let end = t0 + self.requests * REQUEST_SPACING_NS;
        out.line(&format!(
            "{{\"type\":\"last-prompt\",\"lastPrompt\":\"{}\",\"leafUuid\":\"{parent}\",\"sessionId\":\"{id}\"}}",
            filler(self.index, 180)
        ))?;
        if self.index % 10 != 9 {
            out.line(&format!(
                "{{\"type\":\"cost-state\",\"sessionId\":\"{id}\",\"totalCostUSD\":{cost_by_model},\"totalAPIDuration\":{},\"totalLinesAdded\":0,\"totalLinesRemoved\":0,\"totalDuration\":{},\"startTime\":{},\"modelUsage\":{{\"{model}\":{{\"inputTokens\":{},\"outputTokens\":{},\"cacheReadInputTokens\":{},\"cacheCreationInputTokens\":{},\"webSearchRequests\":0,\"costUSD\":{cost_by_model}}}}},\"hasUnknownModelCost\":false}}",
                self.requests * 4_000,
                (end - t0) / 1_000_000,
                t0 / 1_000_000,
                tokens[0],
                tokens[1],
                tokens[2],
                tokens[3]
            ))?;
        }
        Ok(())
    }
}
