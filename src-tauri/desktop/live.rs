//! Keeps the tray and the window current: on each committed change (or, when another process
//! owns the ports, when the database files change), recompute today's figures, update the tray,
//! and tell the window process to reload. Also at local midnight, so "today" rolls over.
//!
//! The forwarding checkbox is checked on a timer of its own: what it shows (the `[forward]`
//! section, the switch, a pause for wrong credentials) changes without any new data.

use std::sync::Arc;
use std::time::Duration;

use chrono::{Local, Weekday};
use tokentray_core::budget::{self, BudgetPeriod};
use tokentray_core::query::Period;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{sleep, Instant};

use super::engine::{db_fingerprint, Changes, Engine};
use super::launcher::Launcher;
use super::tray::{BudgetLevel, Today, TrayHandle};
use super::{DesktopError, Shared};

/// Changes arrive in bursts (one per commit); waiting this long after the first folds a burst
/// into one refresh and still shows new data well within a second.
const SETTLE: Duration = Duration::from_millis(150);
/// At most this many refreshes per second under a steady stream.
const MIN_INTERVAL: Duration = Duration::from_millis(500);
/// How often the database files are checked when another process writes them.
const FILE_POLL: Duration = Duration::from_secs(2);
/// Longest sleep between checks of the date (suspend and clock changes make long sleeps late).
const MAX_SLEEP: Duration = Duration::from_secs(300);
/// How often the forwarding checkbox is brought up to date (a `stat` of the config file and a
/// pragma; the file is parsed and the status queried only when one of them moved): soon enough
/// after a `tokentray forward setup` in a terminal, rarely enough that the wake-ups do not show
/// in the idle tray's CPU.
const FORWARD_POLL: Duration = Duration::from_secs(5);

enum Wake {
    Data,
    Day,
    Closed,
}

pub fn spawn(engine: &Engine, shared: Arc<Shared>, tray: TrayHandle, launcher: Arc<Launcher>) {
    // A thread of its own, not a task: on the runtime each look was a timer wake-up, a hop to
    // the blocking pool and back (~8 context switches); here it is one wake-up, a `stat` and a
    // pragma. It ends with the event loop.
    let (forward_shared, forward_tray) = (shared.clone(), tray.clone());
    let spawned =
        std::thread::Builder::new().name("tokentray-forward-look".into()).spawn(move || {
            while !forward_tray.is_closed() {
                refresh_forward(&forward_shared, &forward_tray);
                std::thread::sleep(FORWARD_POLL);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot follow the forwarding state: {e}");
    }
    let mut changes = engine.changes();
    engine.handle().spawn(async move {
        refresh(&shared, &tray).await;
        let mut day = Local::now().date_naive();
        let mut last = Instant::now();
        loop {
            let wake = wait(&mut changes, day).await;
            let reason = match wake {
                Wake::Closed => break,
                Wake::Day => "day",
                Wake::Data => {
                    let pause = SETTLE.max(MIN_INTERVAL.saturating_sub(last.elapsed()));
                    sleep(pause).await;
                    drain(&mut changes);
                    "data"
                }
            };
            day = Local::now().date_naive();
            last = Instant::now();
            refresh(&shared, &tray).await;
            launcher.changed(reason);
        }
    });
}

async fn wait(changes: &mut Changes, day: chrono::NaiveDate) -> Wake {
    let day_changed = || Local::now().date_naive() != day;
    match changes {
        Changes::Store(rx) => loop {
            tokio::select! {
                r = rx.recv() => return match r {
                    Ok(_) | Err(RecvError::Lagged(_)) => Wake::Data,
                    Err(RecvError::Closed) => Wake::Closed,
                },
                _ = sleep(until_midnight()) => if day_changed() { return Wake::Day },
            }
        },
        Changes::Files(dir) => {
            let before = db_fingerprint(dir);
            loop {
                sleep(FILE_POLL).await;
                if db_fingerprint(dir) != before {
                    return Wake::Data;
                }
                if day_changed() {
                    return Wake::Day;
                }
            }
        }
    }
}

fn drain(changes: &mut Changes) {
    if let Changes::Store(rx) = changes {
        while !matches!(
            rx.try_recv(),
            Err(tokio::sync::broadcast::error::TryRecvError::Empty
                | tokio::sync::broadcast::error::TryRecvError::Closed)
        ) {}
    }
}

/// Time to the next local midnight (a second past it), capped at [`MAX_SLEEP`].
fn until_midnight() -> Duration {
    let now = Local::now();
    let next = Period::Today.range_at(&now, Weekday::Mon).end_ns.unwrap_or(i64::MAX);
    let now_ns = now.timestamp_nanos_opt().unwrap_or(0);
    let wait = Duration::from_nanos(u64::try_from(next.saturating_sub(now_ns)).unwrap_or(0))
        + Duration::from_secs(1);
    wait.min(MAX_SLEEP)
}

async fn refresh(shared: &Arc<Shared>, tray: &TrayHandle) {
    let reader = shared.clone();
    let today = tokio::task::spawn_blocking(move || {
        let budgets = reader.budgets.current();
        let report = reader
            .read(|r| r.report("today", Period::Today.range_now(budgets.week_start.0), None))?;
        let status = reader.read(|r| budget::status(r, &budgets, &Local::now()))?;
        let daily = status
            .budgets
            .iter()
            .find(|b| b.period == BudgetPeriod::Daily && b.model.is_none() && b.agent.is_none())
            .map(|b| b.limit_usd);
        let today = Today::of(&report.figures, daily, BudgetLevel::of(&status));
        Ok::<_, DesktopError>((today, status.paused_until_ns.is_some()))
    })
    .await
    .map_err(|e| DesktopError::Interrupted(e.to_string()))
    .and_then(|r| r);
    match today {
        Ok((today, paused)) => tray.show(today, paused),
        Err(e) => {
            tracing::warn!("cannot read today's figures: {e}");
            tray.show_error(&e);
        }
    }
}

fn refresh_forward(shared: &Shared, tray: &TrayHandle) {
    match shared.forward.tray_if_changed() {
        Ok(Some(state)) => tray.show_forward(state),
        Ok(None) => {}
        Err(e) => tracing::warn!("cannot read the forwarding state: {e}"),
    }
}
