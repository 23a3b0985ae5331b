//! The [`Forwarder`]: a thread with its own single-threaded runtime that takes from the queue
//! and sends. Ingest never waits for it: the store only appends to the queue inside its own
//! transaction, and this side deletes what was delivered.
//!
//! Each round it follows the config file (`[forward]`), the on/off switch and "headers changed"
//! (`settings`), then sends one batch and handles the answer: delivered → removed; retry →
//! exponential backoff with jitter, or the delay the peer asked for; refused as invalid →
//! dropped and counted; wrong credentials → paused until the headers change or forwarding is
//! turned on again.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{broadcast, watch};

use super::exporter::{Exporter, Outcome};
use super::queue::{self, key, Queue, Trimmed};
use super::{remote_write, secret, ForwardError};
use crate::config::{file_stamp, Config, FileStamp, ForwardConfig, ForwardProtocol};
use crate::store::{ForwardMode, Store};

/// Largest batch of queued requests sent as one export.
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Rows per remote-write request.
const MAX_ROWS: usize = 2000;
/// How often the switch and the config file are looked at when nothing else happens.
const TICK: Duration = Duration::from_millis(500);
/// How long an idle forwarder (off, or nothing to send) sleeps unless new data or a change made
/// in this process wakes it: `tokentray forward on|off` or new headers from another process are
/// noticed within this. A wake-up costs 1–2 ms of CPU on the 2-core VM of BENCHMARKS.md, so
/// polling even every few seconds would take an idle engine past its 0.1 %-of-a-core budget.
const TICK_IDLE: Duration = Duration::from_secs(10);

/// Wakes the forwarders of this process at once: [`super::control`] calls it after every change
/// it makes, so the tray's checkbox and the window's switch act immediately; another process's
/// change is seen within [`TICK_IDLE`].
static NUDGE: tokio::sync::Notify = tokio::sync::Notify::const_new();

pub(crate) fn nudge() {
    NUDGE.notify_waiters();
}
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Owns the forwarding thread; stops it (after the send in flight) when dropped.
pub struct Forwarder {
    stop: Option<watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Forwarder {
    /// Starts forwarding for `store`, following `config.source` for `[forward]` changes.
    pub fn start(store: Store, config: &Config) -> Result<Forwarder, ForwardError> {
        let queue = Queue::open(store.path())?;
        let (stop, stopped) = watch::channel(false);
        let mut follower = ConfigFollower::new(config);
        // Prepared before the engine answers its first request, so that when forwarding is on at
        // start, the very first request is queued too.
        prepare(&store, follower.current().0);
        let thread = std::thread::Builder::new()
            .name("tokentray-forward".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the forwarder's runtime; forwarding is off");
                        return;
                    }
                };
                rt.block_on(Loop::new(store, queue, follower).run(stopped));
            })
            .map_err(|e| ForwardError::Start(e.to_string()))?;
        Ok(Forwarder { stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `[forward]` of the config file, re-read when the file changes.
struct ConfigFollower {
    file: Option<PathBuf>,
    seen: Option<FileStamp>,
    current: ForwardConfig,
}

impl ConfigFollower {
    fn new(config: &Config) -> ConfigFollower {
        let seen = config.source.as_deref().and_then(file_stamp);
        ConfigFollower { file: config.source.clone(), seen, current: config.forward.clone() }
    }

    /// The section now, and whether the file changed since the last look.
    fn current(&mut self) -> (&ForwardConfig, bool) {
        let mut changed = false;
        if let Some(path) = &self.file {
            let now = file_stamp(path);
            if now != self.seen {
                changed = true;
                self.seen = now;
                match Config::from_file(path) {
                    Ok(c) => {
                        if c.forward != self.current {
                            tracing::info!(
                                endpoint = c.forward.endpoint.as_deref().unwrap_or("-"),
                                protocol = c.forward.protocol.name(),
                                "forwarding settings reloaded"
                            );
                        }
                        self.current = c.forward;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "config file changed but cannot be read; keeping the forwarding settings in effect")
                    }
                }
            }
        }
        (&self.current, changed)
    }
}

/// Tells the store what to prepare for the configured protocol: the receiver encodes requests
/// (OTLP), the writer may mark changed series (remote write). The writer queues them only while
/// the switch in `settings` is on, which it reads inside its own transaction: the first request
/// committed after `tokentray forward on` is queued too, however late this thread looks.
fn prepare(store: &Store, config: &ForwardConfig) -> ForwardMode {
    let mode = match (config.endpoint.is_some(), config.protocol) {
        (true, ForwardProtocol::PrometheusRemoteWrite) => {
            ForwardMode { remote_write: true, ..ForwardMode::OFF }
        }
        (true, _) => ForwardMode { otlp: true, traces: config.traces, remote_write: false },
        _ => ForwardMode::OFF,
    };
    if store.forward_mode() != mode {
        store.set_forward_mode(mode);
    }
    mode
}

/// Exponential backoff with full jitter: a uniformly random delay between half and all of
/// `initial × 2^failures`, capped.
struct Backoff {
    failures: u32,
    seed: u64,
}

impl Backoff {
    fn next(&mut self, initial: Duration, max: Duration) -> Duration {
        let base = initial.saturating_mul(1u32 << self.failures.min(20)).min(max);
        self.failures += 1;
        // xorshift64*: jitter needs no cryptographic randomness, only no lockstep between
        // developers retrying against the same collector after an outage.
        self.seed ^= self.seed >> 12;
        self.seed ^= self.seed << 25;
        self.seed ^= self.seed >> 27;
        let r = self.seed.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let frac = (r >> 11) as f64 / (1u64 << 53) as f64;
        base.mul_f64(0.5 + 0.5 * frac)
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

struct Loop {
    store: Store,
    queue: Queue,
    follower: ConfigFollower,
    changes: broadcast::Receiver<crate::store::Change>,
    exporter: Option<(ExporterKey, Exporter)>,
    backoff: Backoff,
    retry_at: Option<Instant>,
    last_trim: Option<Instant>,
    last_logged_error: Option<String>,
    /// Last remote-write timestamp sent: samples of a row must have increasing timestamps.
    last_rw_ms: i64,
    /// `data_version` when forwarding was last found off.
    idle_version: Option<i64>,
    /// When recent series were last queued again for remote write.
    last_resend: Option<Instant>,
    /// Forwarding is set up and switched on (as last seen).
    on: bool,
    /// … with remote write.
    remote_write: bool,
}

/// What the exporter was built from; a change rebuilds it.
#[derive(PartialEq)]
struct ExporterKey {
    config: ForwardConfig,
    headers_version: HeadersVersion,
}

/// The `forward set-headers` stamp and the headers file's stamp.
type HeadersVersion = (Option<String>, Option<FileStamp>);

impl Loop {
    fn new(store: Store, queue: Queue, follower: ConfigFollower) -> Loop {
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1;
        Loop {
            changes: store.subscribe(),
            store,
            queue,
            follower,
            exporter: None,
            backoff: Backoff { failures: 0, seed },
            retry_at: None,
            last_trim: None,
            last_logged_error: None,
            last_rw_ms: 0,
            idle_version: None,
            last_resend: None,
            on: false,
            remote_write: false,
        }
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            let wait = match self.round().await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::warn!(error = %e, "forwarding: cannot read or update the queue");
                    Some(Duration::from_secs(1))
                }
            };
            if let Some(wait) = wait {
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = self.changes.recv() => {}
                    _ = NUDGE.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            if *stop.borrow() {
                break;
            }
        }
        self.store.set_forward_mode(ForwardMode::OFF);
    }

    /// One round; `Some(wait)` when there is nothing to do for now.
    async fn round(&mut self) -> Result<Option<Duration>, ForwardError> {
        let (config, config_changed) = self.follower.current();
        let config = config.clone();
        let Some(mode) = self.follow_switch(&config, config_changed)? else {
            return Ok(Some(TICK_IDLE));
        };
        self.trim_if_due(&config)?;
        let headers_version = self.headers_version(&config)?;
        if let ControlFlow::Break(wait) = self.wait_out_pause_or_retry(&config, &headers_version)? {
            return Ok(wait);
        }
        if let ControlFlow::Break(wait) = self.ensure_exporter(&config, headers_version)? {
            return Ok(wait);
        }
        if mode.remote_write {
            self.send_remote_write(&config).await
        } else {
            self.send_otlp(&config).await
        }
    }

    /// Follows the config and the on/off switch; the mode to forward with, or `None` while off.
    fn follow_switch(
        &mut self,
        config: &ForwardConfig,
        config_changed: bool,
    ) -> Result<Option<ForwardMode>, ForwardError> {
        // Off and nothing committed anywhere since the last look: nothing can have turned
        // forwarding on. Idle, this round is one stat and one pragma.
        let version = self.queue.data_version()?;
        if !self.on && !config_changed && self.idle_version == Some(version) {
            return Ok(None);
        }
        let mode = prepare(&self.store, config);
        let on = mode != ForwardMode::OFF
            && queue::get(&self.queue, key::ENABLED)?.as_deref() == Some("1");
        let remote_write = on && mode.remote_write;
        if on != self.on || remote_write != self.remote_write {
            // Remote write sends totals: when it starts, every series' total is due, not only
            // those that change from now on; when it stops, nothing is due any more.
            if remote_write && !self.remote_write {
                self.queue.mark_all_changed()?;
            }
            if !remote_write && self.remote_write {
                self.queue.clear_changed()?;
            }
            tracing::info!(on, protocol = config.protocol.name(), "forwarding switched");
            self.on = on;
            self.remote_write = remote_write;
        }
        if !on {
            self.exporter = None;
            self.idle_version = Some(version);
            return Ok(None);
        }
        self.idle_version = None;
        Ok(Some(mode))
    }

    fn trim_if_due(&mut self, config: &ForwardConfig) -> Result<(), ForwardError> {
        if self.last_trim.is_none_or(|t| t.elapsed() >= TRIM_EVERY) {
            self.last_trim = Some(Instant::now());
            self.trim(config)?;
        }
        Ok(())
    }

    /// What tells that the headers changed: the stamp `forward set-headers` leaves, and the
    /// headers file's own.
    fn headers_version(&self, config: &ForwardConfig) -> Result<HeadersVersion, ForwardError> {
        Ok((
            queue::get(&self.queue, key::HEADERS_CHANGED_NS)?,
            config.headers_file.as_deref().and_then(file_stamp),
        ))
    }

    /// `Break(wait)` while paused on wrong credentials or waiting for the next retry.
    fn wait_out_pause_or_retry(
        &mut self,
        config: &ForwardConfig,
        headers_version: &HeadersVersion,
    ) -> Result<ControlFlow<Option<Duration>>, ForwardError> {
        let conn = &self.queue;
        if queue::get(conn, key::PAUSED)?.is_some_and(|p| !p.is_empty()) {
            // `forward set-headers` and `forward on` clear the pause; so does an edit of the
            // headers file or of `[forward]` (a new exporter is built then), and a restart
            // tries once more.
            let changed = self
                .exporter
                .as_ref()
                .is_none_or(|(k, _)| k.headers_version != *headers_version || k.config != *config);
            if !changed {
                self.retry_at = None;
                return Ok(ControlFlow::Break(Some(TICK_IDLE)));
            }
            queue::unset(conn, key::PAUSED)?;
        }
        if let Some(at) = self.retry_at {
            // A cleared retry time (headers changed, forwarding turned on again) retries now.
            if queue::get(conn, key::RETRY_AT_NS)?.is_none() {
                self.retry_at = None;
                self.backoff.reset();
            } else if Instant::now() < at {
                return Ok(ControlFlow::Break(Some((at - Instant::now()).min(TICK_IDLE))));
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// (Re)builds the exporter when the config or the headers changed; `Break(wait)` when it
    /// cannot be built (recorded as a failure to retry).
    fn ensure_exporter(
        &mut self,
        config: &ForwardConfig,
        headers_version: HeadersVersion,
    ) -> Result<ControlFlow<Option<Duration>>, ForwardError> {
        let wanted = ExporterKey { config: config.clone(), headers_version };
        if self.exporter.as_ref().is_some_and(|(k, _)| *k == wanted) {
            return Ok(ControlFlow::Continue(()));
        }
        // Blocking keychain call: fine on this thread, which serves nothing else.
        // No keychain at all (a server without a desktop session) is fine as long as no
        // headers were ever stored: a collector without auth needs none.
        let never_stored = wanted.headers_version.0.is_none() && config.headers_file.is_none();
        let headers = match secret::forward_headers(config) {
            Err(ForwardError::Keychain(_)) if never_stored => Ok(super::Headers::default()),
            other => other,
        };
        match headers.and_then(|h| Exporter::new(config, h)) {
            Ok(e) => {
                self.exporter = Some((wanted, e));
                Ok(ControlFlow::Continue(()))
            }
            Err(e) => {
                self.exporter = None;
                self.failed(Outcome::Retry { after: None, error: e.to_string() }, config)?;
                Ok(ControlFlow::Break(Some(TICK)))
            }
        }
    }

    /// Sends the totals of changed series; `Some(wait)` when none are due.
    async fn send_remote_write(
        &mut self,
        config: &ForwardConfig,
    ) -> Result<Option<Duration>, ForwardError> {
        let every = Duration::from_secs(config.resend_interval_seconds);
        self.queue_resend_if_due(config, every)?;
        let (rows, seqs) = self.queue.changed_rows(MAX_ROWS)?;
        if seqs.is_empty() {
            let until_resend = self
                .last_resend
                .filter(|_| !every.is_zero())
                .map(|t| every.saturating_sub(t.elapsed()));
            return Ok(Some(
                until_resend.map_or(TICK_IDLE, |d| d.clamp(Duration::from_millis(50), TICK_IDLE)),
            ));
        }
        let Some((_, exporter)) = &self.exporter else { return Ok(Some(TICK)) };
        let extra = super::identity::outgoing(config);
        let now_ms = crate::ingest::now_ns() / 1_000_000;
        let ts = now_ms.max(self.last_rw_ms + 1);
        let body = prost::Message::encode_to_vec(&remote_write::build(&rows, &extra, ts));
        match exporter.send_remote_write(&body).await {
            Outcome::Delivered { .. } => {
                self.last_rw_ms = ts;
                self.queue.remove_changed(&seqs, crate::ingest::now_ns())?;
                self.succeeded()?;
            }
            Outcome::Rejected { error } => {
                // The values are still ours; only this attempt is given up. Prometheus
                // refuses a whole request for one bad sample, so the next round retries
                // after a pause instead of dropping totals.
                self.failed(Outcome::Retry { after: None, error }, config)?;
            }
            other => self.failed(other, config)?,
        }
        Ok(None)
    }

    /// Queues the recent series again every `every`, as a scrape would: the team's instant
    /// queries look back only 5 minutes and would lose sight of series that rarely change.
    fn queue_resend_if_due(
        &mut self,
        config: &ForwardConfig,
        every: Duration,
    ) -> Result<(), ForwardError> {
        if !every.is_zero() && self.last_resend.is_none_or(|t| t.elapsed() >= every) {
            self.last_resend = Some(Instant::now());
            let window_ns =
                config.resend_window_hours.saturating_mul(3_600_000_000_000).min(i64::MAX as u64)
                    as i64;
            self.queue.mark_changed_since(crate::ingest::now_ns().saturating_sub(window_ns))?;
        }
        Ok(())
    }

    /// Sends the next batch of queued OTLP requests; `Some(wait)` when the queue is empty.
    async fn send_otlp(
        &mut self,
        config: &ForwardConfig,
    ) -> Result<Option<Duration>, ForwardError> {
        let Some((_, exporter)) = &self.exporter else { return Ok(Some(TICK)) };
        let extra = super::identity::outgoing(config);
        let Some(batch) = self.queue.next_batch(MAX_BATCH_BYTES)? else {
            return Ok(Some(TICK_IDLE));
        };
        let outcome = match batch.signal {
            Some(signal) => exporter.send_otlp(signal, &batch.payload, &extra).await,
            None => Outcome::Rejected {
                error: "queued requests of a signal tokentray does not know (a damaged row)".into(),
            },
        };
        match outcome {
            Outcome::Delivered { refused, message } => {
                self.queue.remove(&batch.ids, key::DELIVERED, crate::ingest::now_ns(), true)?;
                if refused > 0 {
                    let error = format!(
                        "the collector refused {refused} item(s) as invalid: {}",
                        message.unwrap_or_default()
                    );
                    self.record_error(&error)?;
                }
                self.succeeded()?;
            }
            Outcome::Rejected { error } => {
                self.queue.remove(
                    &batch.ids,
                    key::DROPPED_REJECTED,
                    crate::ingest::now_ns(),
                    false,
                )?;
                self.record_error(&format!("{error} — {} request(s) dropped", batch.ids.len()))?;
            }
            other => self.failed(other, config)?,
        }
        Ok(None)
    }

    fn succeeded(&mut self) -> Result<(), ForwardError> {
        if self.retry_at.is_some() || self.backoff.failures > 0 {
            tracing::info!("forwarding: delivered again");
        }
        self.backoff.reset();
        self.retry_at = None;
        self.last_logged_error = None;
        queue::unset(&self.queue, key::RETRY_AT_NS)?;
        Ok(())
    }

    fn record_error(&mut self, error: &str) -> Result<(), ForwardError> {
        let conn = &self.queue;
        queue::set(conn, key::LAST_ERROR, error)?;
        queue::set(conn, key::LAST_ERROR_NS, &crate::ingest::now_ns().to_string())?;
        self.log_error(error);
        Ok(())
    }

    /// Logs `error` once, not again while it repeats.
    fn log_error(&mut self, error: &str) {
        if self.last_logged_error.as_deref() != Some(error) {
            tracing::warn!(%error, "forwarding");
            self.last_logged_error = Some(error.to_string());
        }
    }

    fn failed(&mut self, outcome: Outcome, config: &ForwardConfig) -> Result<(), ForwardError> {
        match outcome {
            Outcome::Auth { error } => {
                self.record_error(&error)?;
                queue::set(&self.queue, key::PAUSED, &error)?;
                self.retry_at = None;
            }
            Outcome::Retry { after, error } => {
                let delay = after.unwrap_or_else(|| {
                    self.backoff.next(
                        Duration::from_millis(config.retry_initial_ms.max(1)),
                        Duration::from_secs(config.retry_max_seconds.max(1)),
                    )
                });
                self.record_error(&error)?;
                self.retry_at = Some(Instant::now() + delay);
                let at_ns = crate::ingest::now_ns() + delay.as_nanos().min(i64::MAX as u128) as i64;
                queue::set(&self.queue, key::RETRY_AT_NS, &at_ns.to_string())?;
            }
            Outcome::Rejected { error } => self.record_error(&error)?,
            Outcome::Delivered { .. } => {}
        }
        Ok(())
    }

    fn trim(&mut self, config: &ForwardConfig) -> Result<(), ForwardError> {
        let max_bytes = config.max_queue_mib.saturating_mul(1024 * 1024);
        let max_age_ns = (config.max_queue_age_hours.saturating_mul(3600))
            .saturating_mul(1_000_000_000)
            .min(i64::MAX as u64) as i64;
        let describe = |trimmed: &Trimmed| {
            let why = if trimmed.by_age == trimmed.requests {
                format!("older than {} hours", config.max_queue_age_hours)
            } else {
                format!("the queue is limited to {} MiB", config.max_queue_mib)
            };
            format!(
                "queue full: dropped the {} oldest request(s) ({} KiB) waiting for {} ({why}); raise [forward] max_queue_mib / max_queue_age_hours to keep more",
                trimmed.requests,
                trimmed.bytes / 1024,
                config.endpoint.as_deref().unwrap_or("the endpoint"),
            )
        };
        // The words are stored with the drop (last drop and last error, one commit); here
        // they are only logged. A later delivery error replaces `last_error`, not `last_drop`.
        let trimmed = self.queue.trim(max_bytes, max_age_ns, crate::ingest::now_ns(), describe)?;
        if trimmed.requests > 0 {
            self.log_error(&describe(&trimmed));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let mut b = Backoff { failures: 0, seed: 42 };
        let initial = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        let delays: Vec<Duration> = (0..10).map(|_| b.next(initial, max)).collect();
        for (i, d) in delays.iter().enumerate() {
            let base = (initial * (1 << i)).min(max);
            assert!(
                *d >= base / 2 && *d <= base,
                "attempt {i}: {d:?} not within [{:?}, {base:?}]",
                base / 2
            );
        }
        assert!(delays.windows(2).any(|w| w[0] != w[1] / 2), "jitter: not exactly doubling");
        b.reset();
        assert!(b.next(initial, max) <= initial);
    }
}
