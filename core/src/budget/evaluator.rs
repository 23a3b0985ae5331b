//! The evaluator: a thread that recomputes the budgets after every commit of the store and
//! notifies thresholds crossed for the first time in their period.
//!
//! It runs on its own thread with a small current-thread runtime, so it needs no runtime from
//! the caller (the Tauri shell has its own), and notifiers may block. Triggers:
//!
//! * a [`Change`](crate::store::Change) from the store — the data that may cross a line; queued
//!   changes are folded into one evaluation;
//! * the next period boundary or the end of a pause — a timer, so the published status (the
//!   tray's "$16.12 / $20") resets at midnight without new data. Sleeps are capped at
//!   [`MAX_SLEEP`] because a suspended laptop's monotonic timer stops: after a resume the
//!   boundary is noticed within that cap. Re-arming itself needs no timer: fired thresholds are
//!   keyed by the period's start, so a new period has none;
//! * [`EvaluatorHandle::evaluate_now`].
//!
//! The budgets come from a [`BudgetsSource`], which follows the config file when told to.

use std::fmt::Display;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Local, TimeZone};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::{
    status, Alert, AlertState, BudgetError, BudgetStatus, BudgetsSource, Clock, Notifier,
    SystemClock,
};
use crate::config::BudgetsConfig;
use crate::store::{Change, Reader, Store};

/// Longest sleep between two looks at the wall clock (see the module docs).
const MAX_SLEEP: std::time::Duration = std::time::Duration::from_secs(15 * 60);
/// Retry delay after an evaluation failed (e.g. the disk is full), instead of a tight loop.
const RETRY_NS: i64 = 60 * 1_000_000_000;

/// Builder of the evaluator thread.
pub struct Evaluator<C = SystemClock, Tz = Local> {
    reader: Reader,
    state: AlertState,
    changes: broadcast::Receiver<Change>,
    budgets: BudgetsSource,
    notifier: Arc<dyn Notifier>,
    clock: C,
    tz: Tz,
}

enum Command {
    Evaluate(oneshot::Sender<Result<BudgetStatus, BudgetError>>),
}

/// Controls a running evaluator; it stops when the handle is dropped or the store closes.
pub struct EvaluatorHandle {
    commands: mpsc::UnboundedSender<Command>,
    status: watch::Receiver<Option<BudgetStatus>>,
    evaluated: watch::Receiver<i64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Evaluator<SystemClock, Local> {
    /// An evaluator of `store` on the system clock in the local time zone. It subscribes to
    /// the store's changes now, so nothing committed after this call is missed.
    pub fn new(
        store: &Store,
        budgets: BudgetsConfig,
        notifier: Arc<dyn Notifier>,
    ) -> Result<Evaluator, BudgetError> {
        Ok(Evaluator {
            reader: store.reader()?,
            state: AlertState::open(store.path())?,
            changes: store.subscribe(),
            budgets: BudgetsSource::fixed(budgets),
            notifier,
            clock: SystemClock,
            tz: Local,
        })
    }
}

impl<C, Tz> Evaluator<C, Tz>
where
    C: Clock,
    Tz: TimeZone + Send + 'static,
    Tz::Offset: Display + Send,
{
    /// The same evaluator reading the time from `clock` instead (tests use a fake clock).
    pub fn with_clock<C2: Clock>(self, clock: C2) -> Evaluator<C2, Tz> {
        Evaluator {
            reader: self.reader,
            state: self.state,
            changes: self.changes,
            budgets: self.budgets,
            notifier: self.notifier,
            clock,
            tz: self.tz,
        }
    }

    /// The same evaluator working in `tz` instead: the time zone of the budgets' local days, weeks
    /// and months and of the alerts' times.
    pub fn with_time_zone<Tz2: TimeZone>(self, tz: Tz2) -> Evaluator<C, Tz2> {
        Evaluator {
            reader: self.reader,
            state: self.state,
            changes: self.changes,
            budgets: self.budgets,
            notifier: self.notifier,
            clock: self.clock,
            tz,
        }
    }

    /// Re-reads `[budgets]` from this config file when it changed (checked at each evaluation,
    /// by modification time), so `tokentray budget set` applies to a running `serve`.
    pub fn reload_budgets_from(mut self, config_file: PathBuf) -> Self {
        self.budgets = BudgetsSource::following(config_file, self.budgets.current());
        self
    }

    /// Starts the thread; it evaluates once right away (so budgets already past a threshold
    /// when tokentray starts are reported, once), then after every change.
    pub fn spawn(self) -> Result<EvaluatorHandle, BudgetError> {
        let (commands, rx) = mpsc::unbounded_channel();
        let (status_tx, status) = watch::channel(None);
        let (evaluated_tx, evaluated) = watch::channel(i64::MIN);
        let worker = Worker {
            reader: self.reader,
            state: self.state,
            budgets: self.budgets,
            notifier: self.notifier,
            clock: self.clock,
            tz: self.tz,
            status_tx,
            evaluated_tx,
            next_wake_ns: i64::MIN,
        };
        let changes = self.changes;
        let thread = std::thread::Builder::new()
            .name("tokentray-budgets".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(error = %e, "budget alerts are off: cannot start their runtime");
                        return;
                    }
                };
                runtime.block_on(worker.run(changes, rx));
            })
            .map_err(|e| BudgetError::Invalid(format!("cannot start the budget thread: {e}")))?;
        Ok(EvaluatorHandle { commands, status, evaluated, thread: Some(thread) })
    }
}

struct Worker<C, Tz> {
    reader: Reader,
    state: AlertState,
    budgets: BudgetsSource,
    notifier: Arc<dyn Notifier>,
    clock: C,
    tz: Tz,
    status_tx: watch::Sender<Option<BudgetStatus>>,
    evaluated_tx: watch::Sender<i64>,
    /// Next period boundary or pause end, after which the status must be recomputed.
    next_wake_ns: i64,
}

impl<C, Tz> Worker<C, Tz>
where
    C: Clock,
    Tz: TimeZone,
    Tz::Offset: Display,
{
    async fn run(
        mut self,
        mut changes: broadcast::Receiver<Change>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        self.evaluate_logged();
        loop {
            let now_ns = self.now_ns();
            let sleep = if self.next_wake_ns == i64::MAX {
                MAX_SLEEP
            } else {
                std::time::Duration::from_nanos(
                    self.next_wake_ns.saturating_sub(now_ns).max(0) as u64
                )
                .min(MAX_SLEEP)
            };
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    None => break,
                    Some(Command::Evaluate(reply)) => {
                        let _ = reply.send(self.evaluate());
                    }
                },
                change = changes.recv() => match change {
                    Ok(change) => {
                        // Fold whatever else is queued into this one evaluation.
                        let mut through = change.at_ns;
                        loop {
                            match changes.try_recv() {
                                Ok(c) => through = through.max(c.at_ns),
                                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                                Err(_) => break,
                            }
                        }
                        self.evaluate_logged();
                        self.evaluated_tx.send_replace(through);
                    }
                    // Missed changes only mean an evaluation is due; the next recv has one.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = tokio::time::sleep(sleep) => {
                    if self.now_ns() >= self.next_wake_ns {
                        self.evaluate_logged();
                    }
                }
            }
        }
    }

    fn now_ns(&self) -> i64 {
        self.clock.now().timestamp_nanos_opt().unwrap_or(i64::MAX)
    }

    fn evaluate_logged(&mut self) {
        if let Err(e) = self.evaluate() {
            tracing::warn!(error = %e, "could not evaluate budgets");
        }
    }

    fn evaluate(&mut self) -> Result<BudgetStatus, BudgetError> {
        let budgets = self.budgets.current();
        let now: DateTime<Tz> = self.clock.now().with_timezone(&self.tz);
        let now_ns = now.timestamp_nanos_opt().unwrap_or(i64::MAX);
        let result = status(&self.reader, &budgets, &now);
        let status = match result {
            Ok(s) => s,
            Err(e) => {
                self.next_wake_ns = now_ns.saturating_add(RETRY_NS);
                return Err(e);
            }
        };
        let paused = status.paused_until_ns.is_some_and(|until| now_ns < until);
        for budget in &status.budgets {
            let Some(highest) = budget.highest_crossed else { continue };
            let crossed: Vec<u32> =
                budget.thresholds.iter().copied().filter(|&t| t <= highest).collect();
            // Reading first keeps the common case (nothing new) free of write transactions.
            let fired = self.state.fired(&budget.key, budget.period_start_ns)?;
            if crossed.iter().all(|t| fired.contains(t)) {
                continue;
            }
            if !self.state.claim(
                &budget.key,
                budget.period_start_ns,
                &crossed,
                highest,
                now_ns,
                paused,
            )? {
                continue;
            }
            if paused {
                tracing::info!(budget = %budget.key, threshold = highest, "budget threshold crossed while alerts are paused; not notified");
                continue;
            }
            let alert = Alert::new(budget, highest, &now);
            // Claimed before notifying: a failed delivery is not retried, which is the right
            // side to err on for a notification (never twice).
            if let Err(e) = self.notifier.notify(&alert) {
                tracing::warn!(error = %e, budget = %budget.key, threshold = highest, "could not deliver a budget alert");
            }
        }
        let boundaries =
            status.budgets.iter().map(|b| b.period_end_ns).chain(status.paused_until_ns);
        self.next_wake_ns = boundaries.filter(|&t| t > now_ns).min().unwrap_or(i64::MAX);
        self.status_tx.send_replace(Some(status.clone()));
        Ok(status)
    }
}

impl EvaluatorHandle {
    /// Evaluates now (e.g. after a clock change in tests, or when the user asks) and returns
    /// the status.
    pub async fn evaluate_now(&self) -> Result<BudgetStatus, BudgetError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Evaluate(tx)).map_err(|_| BudgetError::Stopped)?;
        rx.await.map_err(|_| BudgetError::Stopped)?
    }

    /// The status after each evaluation: for the tray label and the window, without polling.
    pub fn status(&self) -> watch::Receiver<Option<BudgetStatus>> {
        self.status.clone()
    }

    /// Waits until the change committed at `change_at_ns` (see [`Change::at_ns`]) or a later
    /// one has been evaluated, including any notification it caused.
    pub async fn wait_evaluated(&self, change_at_ns: i64) -> Result<(), BudgetError> {
        let mut rx = self.evaluated.clone();
        rx.wait_for(|&t| t >= change_at_ns).await.map(|_| ()).map_err(|_| BudgetError::Stopped)
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        // Closing the command channel ends the loop.
        let (closed, _) = mpsc::unbounded_channel();
        self.commands = closed;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for EvaluatorHandle {
    fn drop(&mut self) {
        // Dropping the sender ends the loop; the thread is not joined here, since a drop may
        // happen on an async runtime that must not block.
        let (closed, _) = mpsc::unbounded_channel();
        self.commands = closed;
    }
}
