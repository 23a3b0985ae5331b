//! Budget alerts as desktop notifications, on a real D-Bus session bus.
//!
//! Each test re-runs itself under `dbus-run-session` (its own private bus, torn down after it),
//! where a small notification server (tests/support_desktop/notifications.rs) owns `org.freedesktop.Notifications` and
//! records every `Notify` call. The data goes in through the real store (`Store::ingest`), so the
//! evaluator is triggered by the store's `Change` as in production, and the notifications are
//! sent by the binary's own `DesktopNotifier` (compiled in from `src-tauri/alerts/desktop.rs`)
//! through notify-rust. The clock is a `ManualClock` in Europe/Berlin.
//!
//! Needs `dbus-run-session` (Debian package `dbus-daemon`, installed by `tests/setup.sh`).
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../src-tauri/alerts/desktop.rs"]
mod desktop;
#[path = "support_desktop/mod.rs"]
mod support_desktop;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone};
use chrono_tz::Europe::Berlin;
use chrono_tz::Tz;
use support_desktop::notifications::Notifications;
use tokentray_core::budget::{
    AlertState, Clock, Evaluator, EvaluatorHandle, ManualClock, Notifier,
};
use tokentray_core::config::{BudgetLimit, BudgetsConfig, ModelBudgets};
use tokentray_core::ingest;
use tokentray_core::store::Store;
use tokentray_core::testkit::{self, Usage};

/// Set in the re-run child: the test body runs instead of spawning the bus.
const CHILD: &str = "TOKENTRAY_TEST_ON_PRIVATE_BUS";
const OPUS: &str = "claude-opus-5-5";
const SONNET: &str = "claude-sonnet-5";

/// Runs `body` on a private session bus: in the parent, re-runs this very test (by name) under
/// `dbus-run-session` and checks that it ran and passed; in that child, runs `body`.
fn on_private_bus(name: &str, body: impl FnOnce()) {
    if std::env::var_os(CHILD).is_some() {
        body();
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let out = match Command::new("dbus-run-session")
        .arg("--")
        .arg(&exe)
        .args([name, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD, "1")
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("dbus-run-session is not installed; run tests/setup.sh (it installs Debian's dbus-daemon package)")
        }
        Err(e) => panic!("cannot run dbus-run-session: {e}"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} on a private bus failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("1 passed"),
        "{name} did not run on the private bus:\n{stdout}\n{stderr}"
    );
}

/// Store, evaluator with the desktop notifier, manual clock, and the notification server.
struct Rig {
    _dir: tempfile::TempDir,
    notifications: Notifications,
    store: Store,
    clock: ManualClock,
    handle: EvaluatorHandle,
    session: u32,
}

fn berlin(d: u32, h: u32, m: u32) -> DateTime<Tz> {
    Berlin.with_ymd_and_hms(2026, 11, d, h, m, 0).single().expect("a Berlin time")
}

fn limit(usd: f64) -> BudgetLimit {
    BudgetLimit::new(usd, &[]).expect("limit")
}

fn daily(usd: f64) -> BudgetsConfig {
    BudgetsConfig { daily: Some(limit(usd)), ..BudgetsConfig::default() }
}

fn evaluator(store: &Store, budgets: BudgetsConfig, clock: &ManualClock) -> EvaluatorHandle {
    let notifier: Arc<dyn Notifier> = Arc::new(desktop::DesktopNotifier);
    Evaluator::new(store, budgets, notifier)
        .expect("evaluator")
        .with_clock(clock.clone())
        .with_time_zone(Berlin)
        .spawn()
        .expect("spawn")
}

impl Rig {
    async fn new(now: DateTime<Tz>, budgets: BudgetsConfig) -> Rig {
        let notifications = Notifications::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let clock = ManualClock::new(&now);
        let handle = evaluator(&store, budgets, &clock);
        handle.evaluate_now().await.expect("first evaluation");
        Rig { _dir: dir, notifications, store, clock, handle, session: 0 }
    }

    fn at(&self, t: DateTime<Tz>) {
        self.clock.set(&t);
    }

    /// Spends `usd` on `model` at the clock's time through the store, and waits until the
    /// evaluator has handled that commit (including its notification, a D-Bus round trip).
    async fn spend(&mut self, model: &str, usd: f64) {
        let mut changes = self.store.subscribe();
        self.session += 1;
        let t = self.clock.now().timestamp_nanos_opt().expect("ns") as u64;
        let usage = Usage {
            cost_usd: usd,
            input: 100.0,
            output: 10.0,
            cache_read: 0.0,
            cache_creation: 0.0,
        };
        let req = testkit::metrics_request(testkit::usage_metrics(
            &format!("session-{}", self.session),
            "u",
            model,
            usage,
            t - 1_000_000_000,
            t,
            false,
        ));
        let ack =
            self.store.ingest(ingest::metrics::normalize(req, t as i64)).await.expect("ingest");
        assert_eq!(ack.rejected, 0);
        let change = changes.recv().await.expect("change");
        self.handle.wait_evaluated(change.at_ns).await.expect("evaluated");
    }

    /// Notifications since the last call, as (summary, body); every one from app "tokentray".
    fn take(&self) -> Vec<(String, String)> {
        let shown = self.notifications.take();
        for s in &shown {
            assert_eq!(s.app_name, "tokentray", "{s:?}");
        }
        shown.into_iter().map(|s| (s.summary, s.body)).collect()
    }

    /// Closes store and evaluator and opens new ones on the same data directory.
    async fn restart(&mut self, budgets: BudgetsConfig) {
        self.store.close();
        let dir = self.store.path().parent().expect("data dir").to_path_buf();
        self.store = Store::open(&dir).expect("reopen");
        let handle = evaluator(&self.store, budgets, &self.clock);
        std::mem::replace(&mut self.handle, handle).stop();
        self.handle.evaluate_now().await.expect("first evaluation after the restart");
    }
}

fn pair(summary: &str, body: &str) -> (String, String) {
    (summary.to_string(), body.to_string())
}

fn run(body: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(body);
}

#[test]
fn thresholds_50_80_100_over_a_day() {
    on_private_bus("thresholds_50_80_100_over_a_day", || {
        run(async {
            // Three office days (Sat–Mon, 09:00–17:00, $0.25 per 15 minutes: $8 a day, 40%)
            // give the forecast its activity profile and pace; no alert on those days.
            let mut rig = Rig::new(berlin(21, 8, 0), daily(20.0)).await;
            for day in 21..24 {
                let mut t = berlin(day, 9, 0);
                while t < berlin(day, 17, 0) {
                    rig.at(t);
                    rig.spend(OPUS, 0.25).await;
                    t += Duration::minutes(15);
                }
            }
            assert_eq!(rig.take(), vec![]);
            // The server answers what notify-rust may ask besides Notify.
            let info = tokio::task::spawn_blocking(notify_rust::get_server_information)
                .await
                .expect("join")
                .expect("server information");
            assert_eq!(info.name, "recorder");
            assert_eq!(
                tokio::task::spawn_blocking(notify_rust::get_capabilities)
                    .await
                    .expect("join")
                    .expect("capabilities"),
                vec!["body"]
            );

            // Tuesday.
            rig.at(berlin(24, 9, 10));
            rig.spend(OPUS, 10.0).await;
            assert_eq!(
                rig.take(),
                vec![pair("Daily budget: 50% reached", "50% of your $20 daily budget ($10.00).")]
            );
            rig.at(berlin(24, 11, 0));
            rig.spend(OPUS, 1.0).await; // 55%: nothing
            assert_eq!(rig.take(), vec![]);
            // 14:00: $17 spent, the pace (last 16 active slots: $10, $1 and 14 × $0.25, each capped
            // at 3 × the median $0.25 → (0.75 + 0.75 + 3.5) / 16 = $0.3125 per active slot) over
            // 14:00–17:00 reaches $20 after 9.6 slots: 16:24 ≈ 16:25.
            rig.at(berlin(24, 14, 0));
            rig.spend(OPUS, 6.0).await;
            assert_eq!(
                rig.take(),
                vec![pair("Daily budget: 80% reached", "80% of your $20 daily budget ($17.00). At this pace you reach $20 around 16:25.")]
            );
            // 16:15: $20.50; 3 active slots left at (3 × 0.75 + 13 × 0.25) / 16 = $0.34375.
            rig.at(berlin(24, 16, 15));
            rig.spend(OPUS, 3.5).await;
            assert_eq!(
                rig.take(),
                vec![pair("Daily budget: 100% reached", "100% of your $20 daily budget ($20.50). At this pace the day ends around $21.53.")]
            );
            rig.at(berlin(24, 16, 30));
            rig.spend(OPUS, 5.0).await;
            assert_eq!(rig.take(), vec![], "each threshold once a day");
        })
    });
}

#[test]
fn two_thresholds_in_one_request_notify_once_for_the_highest() {
    on_private_bus("two_thresholds_in_one_request_notify_once_for_the_highest", || {
        run(async {
            let mut rig = Rig::new(berlin(24, 9, 0), daily(20.0)).await;
            rig.spend(OPUS, 17.0).await; // 0 → 85%: 50 and 80 at once
            assert_eq!(
                rig.take(),
                vec![pair("Daily budget: 80% reached", "80% of your $20 daily budget ($17.00).")]
            );
            rig.spend(OPUS, 5.0).await; // → 110%: 100
            assert_eq!(
                rig.take(),
                vec![pair("Daily budget: 100% reached", "100% of your $20 daily budget ($22.00).")]
            );
        })
    });
}

#[test]
fn restart_after_firing_does_not_repeat() {
    on_private_bus("restart_after_firing_does_not_repeat", || {
        run(async {
            let mut rig = Rig::new(berlin(24, 9, 0), daily(20.0)).await;
            rig.spend(OPUS, 10.5).await;
            assert_eq!(
                rig.take(),
                vec![pair("Daily budget: 50% reached", "50% of your $20 daily budget ($10.50).")]
            );
            rig.restart(daily(20.0)).await;
            rig.spend(OPUS, 0.5).await;
            assert_eq!(rig.take(), vec![], "50% was notified before the restart");
            rig.spend(OPUS, 6.0).await;
            assert_eq!(
                rig.take(),
                vec![pair("Daily budget: 80% reached", "80% of your $20 daily budget ($17.00).")]
            );
            rig.restart(daily(20.0)).await;
            assert_eq!(rig.take(), vec![]);
        })
    });
}

#[test]
fn next_day_rearms() {
    on_private_bus("next_day_rearms", || {
        run(async {
            let mut rig = Rig::new(berlin(24, 9, 0), daily(20.0)).await;
            rig.spend(OPUS, 17.0).await;
            assert_eq!(
                rig.take(),
                vec![pair("Daily budget: 80% reached", "80% of your $20 daily budget ($17.00).")]
            );
            // Midnight: the status starts over without any new data.
            rig.at(berlin(25, 0, 0));
            let status = rig.handle.evaluate_now().await.expect("status");
            assert_eq!(
                (status.budgets[0].spent_usd, status.budgets[0].highest_crossed),
                (0.0, None)
            );
            assert_eq!(status.budgets[0].period_start, "2026-11-25T00:00:00+01:00");
            assert_eq!(rig.take(), vec![]);
            // Yesterday's one busy slot (09:00, $17) and today's are the whole history: too
            // little to project (issue 16: no pace from two quarter hours), so no pace sentence.
            rig.at(berlin(25, 9, 0));
            rig.spend(OPUS, 17.0).await;
            assert_eq!(
                rig.take(),
                vec![pair("Daily budget: 80% reached", "80% of your $20 daily budget ($17.00).")]
            );
        })
    });
}

#[test]
fn paused_alerts_stay_silent_and_resume_for_new_thresholds() {
    // Decision: a threshold crossed while paused is recorded as handled (silently), so resuming
    // does not replay it; only thresholds crossed after the resume notify.
    on_private_bus("paused_alerts_stay_silent_and_resume_for_new_thresholds", || {
        run(async {
            let mut rig = Rig::new(berlin(24, 9, 0), daily(20.0)).await;
            let state = AlertState::open(rig.store.path()).expect("alert state");
            state
                .pause_until(Some(tokentray_core::budget::tomorrow_start(&berlin(24, 9, 0))))
                .expect("pause");
            rig.spend(OPUS, 11.0).await; // 55%
            rig.spend(OPUS, 6.0).await; // 85%
            assert_eq!(rig.take(), vec![], "paused");
            let status = rig.handle.evaluate_now().await.expect("status");
            assert_eq!(status.paused_until.as_deref(), Some("2026-11-25T00:00:00+01:00"));
            state.pause_until(None).expect("resume");
            rig.spend(OPUS, 0.5).await; // 87.5%: nothing new
            assert_eq!(rig.take(), vec![], "crossed while paused: not replayed");
            rig.spend(OPUS, 3.0).await; // 102.5%
            assert_eq!(
                rig.take(),
                vec![pair("Daily budget: 100% reached", "100% of your $20 daily budget ($20.50).")]
            );

            // A pause until tomorrow is over tomorrow: the new day alerts again.
            state
                .pause_until(Some(tokentray_core::budget::tomorrow_start(&berlin(24, 9, 0))))
                .expect("pause");
            rig.at(berlin(25, 9, 0));
            rig.spend(OPUS, 10.0).await;
            assert_eq!(rig.take().len(), 1, "the pause ended at midnight");
        })
    });
}

#[test]
fn daily_and_monthly_budgets_together() {
    on_private_bus("daily_and_monthly_budgets_together", || {
        run(async {
            let budgets = BudgetsConfig {
                daily: Some(limit(20.0)),
                monthly: Some(limit(30.0)),
                ..BudgetsConfig::default()
            };
            let mut rig = Rig::new(berlin(24, 9, 0), budgets).await;
            rig.spend(SONNET, 12.0).await; // daily 60%, monthly 40%
            assert_eq!(
                rig.take(),
                vec![pair("Daily budget: 50% reached", "50% of your $20 daily budget ($12.00).")]
            );
            rig.spend(SONNET, 5.0).await; // daily 85%, monthly 56.7%: one alert per budget
            assert_eq!(
                rig.take(),
                vec![
                    pair("Daily budget: 80% reached", "80% of your $20 daily budget ($17.00)."),
                    pair("Monthly budget: 50% reached", "50% of your $30 monthly budget ($17.00)."),
                ]
            );
            // The next day the daily budget starts over; the month goes on from $17.
            rig.at(berlin(25, 9, 0));
            rig.spend(SONNET, 8.0).await; // daily 40%, monthly 83.3%
            let got = rig.take();
            assert_eq!(got.len(), 1, "{got:?}");
            assert_eq!(got[0].0, "Monthly budget: 80% reached");
            assert!(got[0].1.starts_with("80% of your $30 monthly budget ($25.00)."), "{got:?}");
        })
    });
}

#[test]
fn per_model_budget() {
    on_private_bus("per_model_budget", || {
        run(async {
            let mut models = BTreeMap::new();
            models.insert(
                OPUS.to_string(),
                ModelBudgets { daily: Some(limit(10.0)), ..ModelBudgets::default() },
            );
            let mut rig =
                Rig::new(berlin(24, 9, 0), BudgetsConfig { models, ..BudgetsConfig::default() })
                    .await;
            rig.spend(SONNET, 20.0).await;
            assert_eq!(rig.take(), vec![], "other models do not count");
            rig.spend(OPUS, 6.0).await;
            assert_eq!(
                rig.take(),
                vec![pair(
                    "Daily claude-opus-5-5 budget: 50% reached",
                    "50% of your $10 daily budget for claude-opus-5-5 ($6.00)."
                )]
            );
            rig.spend(OPUS, 4.5).await; // 105%: 80 and 100 at once
            assert_eq!(
                rig.take(),
                vec![pair(
                    "Daily claude-opus-5-5 budget: 100% reached",
                    "100% of your $10 daily budget for claude-opus-5-5 ($10.50)."
                )]
            );
        })
    });
}
