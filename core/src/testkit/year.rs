//! A year (or any number of days) of a heavy Claude Code user, shared by the tests, the
//! `report_year` bench and the load generator, so that every figure in BENCHMARKS.md and every
//! exactness check is about the same history.
//!
//! The default shape is issue 13's: 30 sessions a day, each one hour long with four 15-minute
//! DELTA exports (cost + four token types each, `session.count` in the first, `active_time` in
//! the last, `session.id` on every point) and 20 `api_request` events. Timestamps are back-dated:
//! the sessions are spread evenly over the `days` before `end_ns`, the last one ending an hour
//! before it. A year is 10 950 sessions, 76 650 series, 240 900 metric points and 219 000 events.

use super::{synthetic_session, SessionPlan, SyntheticSession, Usage};
use crate::exposition::{SeriesValue, Snapshot};
use crate::ingest::{self, Privacy};
use crate::store::{Store, StoreError};

const DAY_NS: u64 = 86_400 * 1_000_000_000;
const HOUR_NS: u64 = 3_600 * 1_000_000_000;

/// Series one synthetic session creates: `session.count`, `cost.usage`, four `token.usage`
/// types and `active_time.total`.
pub const SERIES_PER_SESSION: u64 = 7;

/// The shape of a generated history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistoryPlan {
    pub days: u64,
    pub sessions_per_day: u64,
    pub exports_per_session: u32,
    pub api_requests_per_session: u32,
    /// The history ends an hour before this (unix ns).
    pub end_ns: u64,
    /// Index of the first session: histories with disjoint ranges of indexes have disjoint
    /// sessions (a second year on top of a first one).
    pub first_index: u64,
}

impl HistoryPlan {
    /// Issue 13's heavy user over `days` days ending at `end_ns`.
    pub fn heavy_user(days: u64, end_ns: u64) -> HistoryPlan {
        HistoryPlan {
            days,
            sessions_per_day: 30,
            exports_per_session: 4,
            api_requests_per_session: 20,
            end_ns,
            first_index: 0,
        }
    }

    /// The same user over the `days` before this history, with sessions of its own (for "two
    /// years": the earlier year first, then this one).
    pub fn before(&self, days: u64) -> HistoryPlan {
        HistoryPlan {
            days,
            end_ns: self.start_ns() + HOUR_NS,
            first_index: self.first_index + self.sessions(),
            ..*self
        }
    }

    pub fn sessions(&self) -> u64 {
        self.days * self.sessions_per_day
    }

    /// When the first session starts.
    pub fn start_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.days * DAY_NS)
    }

    /// The plan of each session, oldest first.
    pub fn session_plans(&self) -> impl Iterator<Item = SessionPlan> + '_ {
        let total = self.sessions().max(1);
        let first = self.start_ns();
        // Sessions evenly spread over [end - days, end - 1 h), so the last one has ended by end.
        let spacing = (self.days * DAY_NS).saturating_sub(HOUR_NS) / total;
        (0..self.sessions()).map(move |i| SessionPlan {
            index: self.first_index + i,
            start_ns: first + i * spacing,
            exports: self.exports_per_session,
            api_requests: self.api_requests_per_session,
        })
    }

    /// The requests of each session, oldest first; deterministic in the plan.
    pub fn generate(&self) -> impl Iterator<Item = SyntheticSession> + '_ {
        self.session_plans().map(synthetic_session)
    }

    /// What the whole history adds up to (generates it once without keeping it).
    pub fn totals(&self) -> HistoryTotals {
        let mut t = HistoryTotals::default();
        for s in self.generate() {
            t.add(&s);
        }
        t
    }
}

/// What a generated history sends, to check stored totals against.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HistoryTotals {
    pub sessions: u64,
    pub series: u64,
    /// Metric data points.
    pub points: u64,
    /// Log records (`api_request` events).
    pub records: u64,
    pub cost_usd: f64,
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    pub cache_creation: f64,
    pub active_seconds: f64,
}

impl HistoryTotals {
    pub fn add(&mut self, s: &SyntheticSession) {
        let Usage { cost_usd: _, input, output, cache_read, cache_creation } = s.tokens;
        self.sessions += 1;
        self.series += SERIES_PER_SESSION;
        self.points += s.points as u64;
        self.records += s.records as u64;
        self.cost_usd += s.cost_usd;
        self.input += input;
        self.output += output;
        self.cache_read += cache_read;
        self.cache_creation += cache_creation;
        self.active_seconds += s.active_seconds;
    }

    /// Both histories together.
    pub fn plus(&self, other: &HistoryTotals) -> HistoryTotals {
        HistoryTotals {
            sessions: self.sessions + other.sessions,
            series: self.series + other.series,
            points: self.points + other.points,
            records: self.records + other.records,
            cost_usd: self.cost_usd + other.cost_usd,
            input: self.input + other.input,
            output: self.output + other.output,
            cache_read: self.cache_read + other.cache_read,
            cache_creation: self.cache_creation + other.cache_creation,
            active_seconds: self.active_seconds + other.active_seconds,
        }
    }

    pub fn tokens(&self) -> f64 {
        self.input + self.output + self.cache_read + self.cache_creation
    }
}

/// Sends `plan` through `store` the way the receivers do (each export request, then the
/// session's events), `in_flight` sessions at a time as many Claude Code processes would: the
/// writer groups their requests into shared transactions. Returns what was sent, or the first
/// error; a record the store refused is an error too.
pub async fn ingest_history(
    store: &Store,
    plan: &HistoryPlan,
    in_flight: usize,
) -> Result<HistoryTotals, StoreError> {
    let mut totals = HistoryTotals::default();
    let mut tasks = tokio::task::JoinSet::new();
    for session in plan.generate() {
        totals.add(&session);
        let store = store.clone();
        tasks.spawn(async move { ingest_session(&store, session).await });
        while tasks.len() >= in_flight.max(1) {
            join_one(&mut tasks).await?;
        }
    }
    while !tasks.is_empty() {
        join_one(&mut tasks).await?;
    }
    Ok(totals)
}

async fn ingest_session(store: &Store, session: SyntheticSession) -> Result<(), StoreError> {
    let mut accepted = 0;
    for request in session.metrics {
        let batch = ingest::metrics::normalize(request, ingest::now_ns());
        accepted += store.ingest(batch).await?.accepted;
    }
    let batch = ingest::logs::normalize(session.logs, ingest::now_ns(), Privacy::default());
    accepted += store.ingest(batch).await?.accepted;
    if accepted != session.points + session.records {
        return Err(StoreError::Sqlite(format!(
            "{accepted} of {} records accepted",
            session.points + session.records
        )));
    }
    Ok(())
}

async fn join_one(
    tasks: &mut tokio::task::JoinSet<Result<(), StoreError>>,
) -> Result<(), StoreError> {
    match tasks.join_next().await {
        Some(Ok(r)) => r,
        Some(Err(e)) => Err(StoreError::Sqlite(format!("ingest task failed: {e}"))),
        None => Ok(()),
    }
}

/// The sum of every series of the `/metrics` family `name` (e.g.
/// `claude_code_cost_usage_USD_total`): what `sum(name)` gives in Prometheus.
pub fn family_sum(snapshot: &Snapshot, name: &str) -> f64 {
    snapshot
        .families
        .iter()
        .filter(|f| f.name == name)
        .flat_map(|f| f.series.iter())
        .map(|s| match &s.value {
            SeriesValue::Number(v) => *v,
            SeriesValue::Histogram(h) => h.sum,
        })
        .sum()
}

/// Costs are sums of doubles added in another order by the store: equal within rounding.
pub fn same_cost(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::TimeRange;

    /// A few days of the heavy user through the store; after a restart both the report and
    /// `/metrics` add up to exactly what was sent (the `report_year` bench does the same with
    /// the whole year).
    #[test]
    fn a_generated_history_adds_up_exactly_after_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plan = HistoryPlan::heavy_user(3, ingest::now_ns() as u64);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let store = Store::open(dir.path()).expect("open");
        let sent = rt.block_on(ingest_history(&store, &plan, 16)).expect("ingest");
        assert_eq!(sent, plan.totals());
        store.close();
        drop(store);

        let store = Store::open(dir.path()).expect("reopen");
        let report = store.reader().expect("reader").report("all", TimeRange::ALL, None);
        let f = report.expect("report").figures;
        assert!(same_cost(f.cost_usd, sent.cost_usd), "{} != {}", f.cost_usd, sent.cost_usd);
        assert_eq!(
            (f.tokens.input, f.tokens.output, f.tokens.cache_read, f.tokens.cache_creation),
            (sent.input, sent.output, sent.cache_read, sent.cache_creation)
        );
        assert_eq!(f.sessions, sent.sessions as f64);
        assert_eq!(f.api_requests.count, sent.records);
        let snapshot = store.snapshot();
        let cost = family_sum(&snapshot, "claude_code_cost_usage_USD_total");
        assert!(same_cost(cost, sent.cost_usd), "/metrics cost {cost} != {}", sent.cost_usd);
        let tokens = family_sum(&snapshot, "claude_code_token_usage_tokens_total");
        assert_eq!(tokens, sent.tokens());
        store.close();
    }

    #[test]
    fn a_year_has_the_shape_of_issue_13() {
        let year = HistoryPlan::heavy_user(365, 400 * DAY_NS);
        assert_eq!(year.sessions(), 10_950);
        let plans: Vec<SessionPlan> = year.session_plans().collect();
        assert_eq!(plans.len(), 10_950);
        assert!(plans.windows(2).all(|w| w[0].start_ns < w[1].start_ns));
        // Back-dated: the whole year lies before its end, the last session over an hour before.
        assert!(plans[0].start_ns >= year.start_ns());
        assert!(plans[10_949].start_ns + HOUR_NS <= year.end_ns);
        let s = synthetic_session(plans[0]);
        assert_eq!(s.metrics.len(), 4);
        assert_eq!(s.records, 20);
        assert_eq!(s.points, 22);
    }

    #[test]
    fn a_second_year_before_has_other_sessions_and_adds_up() {
        let end = 800 * DAY_NS;
        let later = HistoryPlan::heavy_user(3, end);
        let earlier = later.before(2);
        assert!(earlier.end_ns <= later.start_ns() + HOUR_NS);
        let last_earlier = earlier.session_plans().last().map(|p| p.index);
        let first_later = later.session_plans().next().map(|p| p.index);
        assert!(last_earlier.is_some_and(|e| first_later.is_some_and(|l| e != l)));
        let both = earlier.totals().plus(&later.totals());
        assert_eq!(both.sessions, 150);
        assert_eq!(both.series, 150 * SERIES_PER_SESSION);
        assert_eq!(both.records, 150 * 20);
    }
}
