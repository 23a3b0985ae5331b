//! Where "now" comes from. Periods, re-arming and forecasts depend on it, so tests move a
//! [`ManualClock`] across midnights and DST changes instead of waiting for them.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};

/// The current instant. The time zone is separate (the evaluator is generic over it), so one
/// clock serves every zone.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to; clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    ns: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock standing at `at`.
    pub fn new<Tz: TimeZone>(at: &DateTime<Tz>) -> ManualClock {
        ManualClock { ns: Arc::new(AtomicI64::new(at.timestamp_nanos_opt().unwrap_or(0))) }
    }

    /// Moves the clock to `at` (forwards or backwards).
    pub fn set<Tz: TimeZone>(&self, at: &DateTime<Tz>) {
        self.ns.store(at.timestamp_nanos_opt().unwrap_or(0), Ordering::SeqCst);
    }

    /// Moves the clock forwards by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        self.ns.fetch_add(by.num_nanoseconds().unwrap_or(0), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        Utc.timestamp_nanos(self.ns.load(Ordering::SeqCst))
    }
}
