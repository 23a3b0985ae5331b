//! Budgets through the real store: ingest → Change → evaluator → notifier, on a manual clock.
//! (The same scenarios over a real D-Bus notification server are in `tests/desktop_alerts.rs`.)

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, FixedOffset, NaiveTime, TimeZone, Utc, Weekday};

use super::*;
use crate::config::{BudgetLimit, BudgetsConfig, ModelBudgets, WeekStart};
use crate::ingest;
use crate::store::Store;
use crate::testkit::{self, Usage};

#[derive(Default, Clone)]
struct Recorder(Arc<Mutex<Vec<Alert>>>);

impl Notifier for Recorder {
    fn notify(&self, alert: &Alert) -> Result<(), NotifyError> {
        self.0
            .lock()
            .map_err(|_| NotifyError::Failed { channel: "test", reason: "poisoned".into() })?
            .push(alert.clone());
        Ok(())
    }
}

impl Recorder {
    fn take(&self) -> Vec<(String, String)> {
        self.0.lock().expect("lock").drain(..).map(|a| (a.summary, a.body)).collect()
    }
}

fn limit(usd: f64) -> BudgetLimit {
    BudgetLimit::new(usd, &[]).expect("limit")
}

fn daily(usd: f64) -> BudgetsConfig {
    BudgetsConfig { daily: Some(limit(usd)), ..BudgetsConfig::default() }
}

fn cost(usd: f64) -> Usage {
    Usage { cost_usd: usd, input: 1.0, output: 1.0, cache_read: 0.0, cache_creation: 0.0 }
}

struct Rig<Tz: TimeZone> {
    _dir: tempfile::TempDir,
    store: Store,
    clock: ManualClock,
    tz: Tz,
    recorder: Recorder,
    handle: EvaluatorHandle,
    session: u32,
}

impl<Tz> Rig<Tz>
where
    Tz: TimeZone + Send + 'static,
    Tz::Offset: Display + Send,
{
    fn new(tz: Tz, now: DateTime<Tz>, budgets: BudgetsConfig) -> Rig<Tz> {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let clock = ManualClock::new(&now);
        let recorder = Recorder::default();
        let handle = Evaluator::new(&store, budgets, Arc::new(recorder.clone()))
            .expect("evaluator")
            .with_clock(clock.clone())
            .with_time_zone(tz.clone())
            .spawn()
            .expect("spawn");
        Rig { _dir: dir, store, clock, tz, recorder, handle, session: 0 }
    }

    /// Reopens store and evaluator on the same data directory (a restart of tokentray).
    async fn restart(&mut self, budgets: BudgetsConfig) {
        self.store.close();
        self.store = Store::open(self.store.path().parent().expect("dir")).expect("reopen");
        let handle = Evaluator::new(&self.store, budgets, Arc::new(self.recorder.clone()))
            .expect("evaluator")
            .with_clock(self.clock.clone())
            .with_time_zone(self.tz.clone())
            .spawn()
            .expect("spawn");
        std::mem::replace(&mut self.handle, handle).stop();
        // Its first evaluation (at start) is done once this one is answered.
        self.handle.evaluate_now().await.expect("evaluate");
    }

    /// Spends `usd` on `model` at the clock's time, through the store, and waits until the
    /// evaluator has seen the commit.
    async fn spend(&mut self, model: &str, usd: f64) {
        let mut changes = self.store.subscribe();
        self.session += 1;
        let t = self.clock.now().timestamp_nanos_opt().expect("ns") as u64;
        let req = testkit::metrics_request(testkit::usage_metrics(
            &format!("s{}", self.session),
            "u",
            model,
            cost(usd),
            t - 1_000_000_000,
            t,
            false,
        ));
        self.store.ingest(ingest::metrics::normalize(req, t as i64)).await.expect("ingest");
        let change = changes.recv().await.expect("change");
        self.handle.wait_evaluated(change.at_ns).await.expect("evaluated");
    }

    /// A Codex CLI request of `input` and `output` tokens at the clock's time, through the
    /// store; waits until the evaluator has seen the commit.
    async fn spend_codex(&mut self, conversation: &str, input: i64, output: i64) {
        let mut changes = self.store.subscribe();
        let t = self.clock.now().timestamp_nanos_opt().expect("ns") as u64;
        let req = codex_request(conversation, input, output, t);
        let privacy = crate::ingest::Privacy::default();
        self.store.ingest(ingest::logs::normalize(req, t as i64, privacy)).await.expect("ingest");
        let change = changes.recv().await.expect("change");
        self.handle.wait_evaluated(change.at_ns).await.expect("evaluated");
    }
}

fn berlin_like() -> FixedOffset {
    FixedOffset::east_opt(3600).expect("offset")
}

#[tokio::test]
async fn thresholds_fire_once_each_and_together_only_the_highest() {
    let tz = berlin_like();
    let now = tz.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).single().expect("t");
    let mut rig = Rig::new(tz, now, daily(20.0));
    rig.spend(testkit::MODEL, 9.0).await;
    assert_eq!(rig.recorder.take(), vec![]);
    rig.spend(testkit::MODEL, 1.5).await; // 52.5%
    assert_eq!(
        rig.recorder.take(),
        vec![(
            "Daily budget: 50% reached".to_string(),
            "50% of your $20 daily budget ($10.50).".to_string()
        )]
    );
    rig.spend(testkit::MODEL, 0.5).await; // 55%: nothing new
    rig.spend(testkit::MODEL, 10.0).await; // 105%: 80 and 100 at once → one alert, for 100
    let got = rig.recorder.take();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "Daily budget: 100% reached");
    assert!(got[0].1.starts_with("100% of your $20 daily budget ($21.00)."), "{got:?}");
    let fired = AlertState::open(rig.store.path())
        .expect("state")
        .fired("daily:*:20", now.timestamp_nanos_opt().expect("ns") - 9 * 3_600_000_000_000)
        .expect("fired");
    assert_eq!(fired, vec![50, 80, 100]);
    rig.spend(testkit::MODEL, 1.0).await;
    assert_eq!(rig.recorder.take(), vec![]);
}

#[tokio::test]
async fn restart_does_not_repeat_and_the_next_day_rearms() {
    let tz = berlin_like();
    let now = tz.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).single().expect("t");
    let mut rig = Rig::new(tz, now, daily(20.0));
    rig.spend(testkit::MODEL, 17.0).await;
    assert_eq!(rig.recorder.take().len(), 1);
    rig.restart(daily(20.0)).await;
    rig.handle.evaluate_now().await.expect("evaluate");
    rig.spend(testkit::MODEL, 0.5).await;
    assert_eq!(rig.recorder.take(), vec![], "no repeat after a restart");

    // Midnight: the status resets without new data, and thresholds are armed again.
    rig.clock.set(&tz.with_ymd_and_hms(2026, 11, 25, 0, 0, 1).single().expect("t"));
    let status = rig.handle.evaluate_now().await.expect("evaluate");
    assert_eq!(status.budgets[0].spent_usd, 0.0);
    assert_eq!(status.budgets[0].highest_crossed, None);
    assert_eq!(status.level(), Level::Ok);
    rig.clock.set(&tz.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).single().expect("t"));
    rig.spend(testkit::MODEL, 16.0).await;
    let got = rig.recorder.take();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "Daily budget: 80% reached");

    // A changed limit is a new budget: its thresholds are armed.
    rig.restart(daily(18.0)).await;
    let got = rig.recorder.take();
    assert_eq!(
        got.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(),
        vec!["Daily budget: 80% reached"],
        "{got:?}"
    );
}

#[tokio::test]
async fn paused_alerts_are_marked_silently_and_resume_for_new_thresholds() {
    let tz = berlin_like();
    let now = tz.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).single().expect("t");
    let mut rig = Rig::new(tz, now, daily(20.0));
    let state = AlertState::open(rig.store.path()).expect("state");
    state.pause_until(Some(tomorrow_start(&now))).expect("pause");
    assert!(state.is_paused(rig.clock.now()).expect("paused"));
    rig.spend(testkit::MODEL, 11.0).await;
    rig.spend(testkit::MODEL, 6.0).await;
    assert_eq!(rig.recorder.take(), vec![]);
    let status = rig.handle.evaluate_now().await.expect("status");
    assert!(
        status.paused_until.as_deref().is_some_and(|p| p.starts_with("2026-11-25T00:00:00")),
        "{status:?}"
    );
    state.pause_until(None).expect("resume");
    rig.spend(testkit::MODEL, 0.5).await;
    assert_eq!(rig.recorder.take(), vec![], "thresholds crossed while paused stay silent");
    rig.spend(testkit::MODEL, 3.0).await;
    assert_eq!(rig.recorder.take().len(), 1);

    // A pause ends by itself.
    state.pause_until(Some(rig.clock.now() + Duration::hours(1))).expect("pause");
    rig.clock.advance(Duration::hours(2));
    assert!(!state.is_paused(rig.clock.now()).expect("paused"));
}

#[tokio::test]
async fn daily_monthly_and_per_model_budgets() {
    let tz = berlin_like();
    let now = tz.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).single().expect("t");
    let mut models = std::collections::BTreeMap::new();
    models.insert(
        "claude-opus-5-5".to_string(),
        ModelBudgets { daily: Some(limit(10.0)), ..ModelBudgets::default() },
    );
    let budgets = BudgetsConfig {
        daily: Some(limit(20.0)),
        monthly: Some(limit(30.0)),
        models,
        ..BudgetsConfig::default()
    };
    let mut rig = Rig::new(tz, now, budgets);
    rig.spend("claude-sonnet-5", 12.0).await; // daily 60%, monthly 40%, opus 0
    assert_eq!(
        rig.recorder.take().into_iter().map(|a| a.0).collect::<Vec<_>>(),
        vec!["Daily budget: 50% reached"]
    );
    rig.spend("claude-opus-5-5", 5.0).await; // daily 85%, monthly 56.7%, opus 50%
    assert_eq!(
        rig.recorder.take(),
        vec![
            ("Daily budget: 80% reached".into(), "80% of your $20 daily budget ($17.00).".into()),
            (
                "Monthly budget: 50% reached".into(),
                "50% of your $30 monthly budget ($17.00).".into()
            ),
            (
                "Daily claude-opus-5-5 budget: 50% reached".into(),
                "50% of your $10 daily budget for claude-opus-5-5 ($5.00).".into()
            ),
        ]
    );
}

#[tokio::test]
async fn the_notification_says_when_the_pace_reaches_the_limit() {
    // Three office days 09:00–17:00 at $0.50 per 15 minutes ($16 a day), then a fourth day:
    // at 15:00, $12 spent, $16 at 17:00 → 80% of $20 at 15:00, and $20 would need more active
    // hours than the day has.
    let tz = berlin_like();
    let day =
        |d: u32, h: u32, m: u32| tz.with_ymd_and_hms(2026, 11, d, h, m, 0).single().expect("t");
    let mut rig = Rig::new(tz, day(20, 8, 0), daily(40.0));
    for d in 20..24 {
        let until = if d == 23 { day(d, 15, 0) } else { day(d, 17, 0) };
        let mut t = day(d, 9, 0);
        while t < until {
            rig.clock.set(&(t + Duration::minutes(5)));
            rig.spend(testkit::MODEL, 0.5).await;
            t += Duration::minutes(15);
        }
    }
    assert_eq!(rig.recorder.take().len(), 0, "$16 a day is under 50% of $40");
    // At 15:00 on the fourth day, with a budget of $14 (a new budget: its thresholds are armed).
    rig.clock.set(&day(23, 15, 0));
    rig.restart(daily(14.0)).await;
    let got = rig.recorder.take();
    assert_eq!(got.len(), 1, "{got:?}");
    // $12 of $14 (85.7%) → 80%; 8 slots left at $0.50 → $14 after 4 slots: 16:00.
    assert_eq!(
        got[0].1,
        "80% of your $14 daily budget ($12.00). At this pace you reach $14 around 16:00."
    );
    let status = rig.handle.evaluate_now().await.expect("status");
    let b = &status.budgets[0];
    assert!((b.forecast_usd - 16.0).abs() < 1e-9, "{b:?}");
    assert_eq!(b.reach_limit_at.as_deref(), Some("2026-11-23T16:00:00+01:00"));
    // Past the limit, the pace sentence says where the day ends instead.
    rig.restart(daily(11.0)).await;
    let got = rig.recorder.take();
    assert_eq!(
        got[0].1,
        "100% of your $11 daily budget ($12.00). At this pace the day ends around $16.00."
    );
}

#[tokio::test]
async fn periods_follow_dst_in_new_york_and_berlin() {
    // New York springs forward on Sunday 8 March 2026 (23-hour day), Berlin falls back on
    // Sunday 25 October 2026 (25-hour day). Spending before and after the jump is one period;
    // the next day is a new one.
    for (tz, date, hours) in [
        (chrono_tz::America::New_York, (2026, 3, 8), 23),
        (chrono_tz::Europe::Berlin, (2026, 10, 25), 25),
    ] {
        let (y, m, d) = date;
        let start = tz.with_ymd_and_hms(y, m, d, 0, 0, 0).single().expect("midnight");
        let (lo, hi) = BudgetPeriod::Daily.range_at(&start, Weekday::Mon);
        assert_eq!((hi - lo) / 3_600_000_000_000, hours, "{tz}");
        let mut rig = Rig::new(tz, start + Duration::minutes(30), daily(20.0));
        rig.spend(testkit::MODEL, 10.0).await; // before the change
        rig.clock.set(&(start + Duration::hours(4))); // after it
        rig.spend(testkit::MODEL, 6.0).await;
        rig.clock.set(&(start + Duration::hours(hours - 1)));
        rig.spend(testkit::MODEL, 4.0).await; // 23:xx local, still the same day
        let got: Vec<String> = rig.recorder.take().into_iter().map(|a| a.0).collect();
        assert_eq!(
            got,
            vec![
                "Daily budget: 50% reached",
                "Daily budget: 80% reached",
                "Daily budget: 100% reached"
            ],
            "{tz}"
        );
        let status = rig.handle.evaluate_now().await.expect("status");
        assert_eq!(
            status.budgets[0].period_start,
            start.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
        );
        rig.clock.set(&(start + Duration::hours(hours) + Duration::minutes(1)));
        let next = rig.handle.evaluate_now().await.expect("status");
        assert_eq!(next.budgets[0].spent_usd, 0.0, "{tz}: a new day");
        rig.spend(testkit::MODEL, 10.0).await;
        assert_eq!(rig.recorder.take().len(), 1, "{tz}: re-armed");
    }
    // A weekly budget with weeks starting on Sunday, across the Berlin change.
    let tz = chrono_tz::Europe::Berlin;
    let sat = tz.with_ymd_and_hms(2026, 10, 24, 12, 0, 0).single().expect("t");
    let (lo, hi) = BudgetPeriod::Weekly.range_at(&sat, Weekday::Sun);
    assert_eq!(tz.timestamp_nanos(lo).to_rfc3339(), "2026-10-18T00:00:00+02:00");
    assert_eq!(tz.timestamp_nanos(hi).to_rfc3339(), "2026-10-25T00:00:00+02:00");
    let sun = tz.with_ymd_and_hms(2026, 10, 25, 12, 0, 0).single().expect("t");
    let (lo, hi) = BudgetPeriod::Weekly.range_at(&sun, Weekday::Sun);
    assert_eq!((hi - lo) / 3_600_000_000_000, 7 * 24 + 1);
}

#[test]
fn pause_helpers_are_local_and_dst_aware() {
    let ny = chrono_tz::America::New_York;
    let evening = ny.with_ymd_and_hms(2026, 3, 7, 22, 0, 0).single().expect("t");
    assert_eq!(
        tomorrow_start(&evening),
        ny.with_ymd_and_hms(2026, 3, 8, 0, 0, 0).single().expect("t").with_timezone(&Utc)
    );
    // 02:30 does not exist on 8 March in New York: the pause ends when the clock reaches 03:00.
    let t = next_local_time(&evening, NaiveTime::from_hms_opt(2, 30, 0).expect("t"));
    assert_eq!(t.with_timezone(&ny).to_rfc3339(), "2026-03-08T03:00:00-04:00");
    let t = next_local_time(&evening, NaiveTime::from_hms_opt(23, 0, 0).expect("t"));
    assert_eq!(t.with_timezone(&ny).to_rfc3339(), "2026-03-07T23:00:00-05:00");
}

#[test]
fn status_json_has_the_documented_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reader = crate::store::Reader::open(dir.path()).expect("reader");
    let tz = berlin_like();
    let now = tz.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).single().expect("t");
    let budgets = BudgetsConfig {
        week_start: WeekStart(Weekday::Sun),
        weekly: Some(limit(50.0)),
        ..BudgetsConfig::default()
    };
    let s = status(&reader, &budgets, &now).expect("status");
    let json = serde_json::to_value(&s).expect("json");
    assert_eq!(
        json,
        serde_json::json!({
            "budgets": [{
                "period": "weekly", "model": null, "limit_usd": 50.0, "spent_usd": 0.0, "percent": 0.0,
                "thresholds": [50, 80, 100], "highest_crossed": null, "forecast_usd": 0.0, "reach_limit_at": null,
                "forecast_ready": false, "period_start": "2026-11-22T00:00:00+01:00", "period_end": "2026-11-29T00:00:00+01:00"
            }],
            "paused_until": null
        })
    );
    assert_eq!(s.level(), Level::Ok);
}

/// One `codex.sse_event` of kind `response.completed` (Codex CLI 0.169.0's shape, see
/// tests/fixtures/codex) at `time_ns`.
fn codex_request(conversation: &str, input: i64, output: i64, time_ns: u64) -> LogsRequest {
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    let text = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(v.into())) }),
        ..Default::default()
    };
    let mut req = testkit::logs_request(vec![opentelemetry_proto::tonic::logs::v1::LogRecord {
        time_unix_nano: time_ns,
        observed_time_unix_nano: time_ns,
        attributes: vec![
            text("event.name", "codex.sse_event"),
            text("event.kind", "response.completed"),
            text("conversation.id", conversation),
            text("model", "gpt-5-codex"),
            text("input_token_count", &input.to_string()),
            text("output_token_count", &output.to_string()),
        ],
        ..Default::default()
    }]);
    if let Some(resource) = req.resource_logs[0].resource.as_mut() {
        resource.attributes = vec![text("service.name", "codex_exec")];
    }
    req
}

type LogsRequest = opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;

/// A budget is for every agent's spend: a Codex CLI request priced from the table counts.
#[tokio::test]
async fn another_agents_spend_counts_toward_the_budget() {
    let tz = berlin_like();
    let now = tz.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).single().expect("t");
    let mut rig = Rig::new(tz, now, daily(20.0));
    rig.spend(testkit::MODEL, 2.0).await;
    // gpt-5-codex at $1.25 per million input and $10 per million output tokens (LiteLLM's
    // model_prices_and_context_window.json, as of 2026-12-02): 1M + 0.8M tokens cost $9.25.
    rig.spend_codex("conv-1", 1_000_000, 800_000).await;
    let got = rig.recorder.take();
    assert_eq!(got.len(), 1, "$11.25 of $20 is past 50%: {got:?}");
    assert!(got[0].1.contains("($11.25)"), "{got:?}");
}

/// `[budgets.agents.codex]`: only Codex CLI's spend counts, and its alert names the agent.
#[tokio::test]
async fn a_budget_for_one_agent_counts_only_its_spend_and_fires_its_alert() {
    let tz = berlin_like();
    let now = tz.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).single().expect("t");
    let mut budgets = BudgetsConfig::default();
    budgets
        .agents
        .insert("codex".into(), ModelBudgets { daily: Some(limit(10.0)), ..Default::default() });
    let mut rig = Rig::new(tz, now, budgets);
    // $30 of Claude Code's is not Codex's.
    rig.spend(testkit::MODEL, 30.0).await;
    assert_eq!(rig.recorder.take(), vec![]);
    // gpt-5-codex at $1.25 / $10 per million input / output tokens (LiteLLM's
    // model_prices_and_context_window.json, as of 2026-12-02): $1.25 + $5.00 = $6.25 = 62.5%.
    rig.spend_codex("conv-2", 1_000_000, 500_000).await;
    assert_eq!(
        rig.recorder.take(),
        vec![(
            "Daily codex budget: 50% reached".to_string(),
            "50% of your $10 daily budget for codex ($6.25).".to_string()
        )]
    );
}
