//! tokentray-core: the headless engine of tokentray.
//!
//! Claude Code exports OpenTelemetry metrics and events; this crate receives them, keeps an exact
//! local history and shows it the way the OpenTelemetry Collector + Prometheus stack would, without
//! that stack. It builds and is tested without any GUI toolkit; the Tauri shell (`src-tauri/`)
//! and the CLI only call into it.
//!
//! Data flows top to bottom through one folder per concern:
//!
//! * [`receiver`] — OTLP/gRPC (tonic) and OTLP/HTTP with protobuf or JSON bodies (axum): content
//!   types, gzip, size limits, the browser-origin guard, OTLP error and partial-success answers.
//! * [`ingest`] — stateless normalisation of export requests into series points, events and
//!   spans; redaction of prompt text unless the user opted in; tokentray's own counter of
//!   `claude_code.api_error` events (`ingest::derived`).
//! * [`store`] — SQLite (WAL, versioned migrations). A single writer thread applies the exact
//!   delta/cumulative accounting ([`store::accounting`]) and group-commits; a request is answered
//!   only after its data is on disk. [`store::Reader`] serves reports.
//! * [`query`] — periods in the local time zone and the report vocabulary.
//! * [`exposition`] — Prometheus names (otlptranslator rules), the pure `encode` of a snapshot,
//!   and `shape` (`[metrics]`: idle series, `drop_labels`).
//! * [`signal`] — the three OTLP signals (metrics, logs, traces) and what the receiver and the
//!   forwarder need of each request type, so both handle requests once for all signals.
//! * [`server`] — bind the listeners, then `run(listeners, store, config, shutdown)`.
//! * [`dashboard`] — what the window and the page at `/` on the metrics listener show.
//! * [`budget`] — daily/weekly/monthly budgets: spend, forecast, one alert per threshold and
//!   period through a [`budget::Notifier`], evaluated after each commit.
//! * [`forward`] — forwarding to the team's collector (OTLP) or Prometheus (remote write), from
//!   a persistent queue filled in the same transaction as the history; headers in the keychain.
//! * [`transcripts`] — Claude Code's local transcripts as a second source, counted once with
//!   telemetry; [`pricing`] prices what no Claude Code cost covers.
//! * [`plan`] — plan usage (5-hour and 7-day windows) handed over by the statusline command.
//! * `pushgateway` — Pushgateway-style pushes (`PUT`/`POST`/`DELETE /metrics/job/…`) kept in
//!   the store and shown on `/metrics` with their grouping labels.
//! * [`doctor`] — who holds a port, whether Claude Code's settings point here.
//! * [`setup`] — Claude Code's `settings.json`: merge the telemetry `env`, back up, undo.
//! * [`statusline`] — the statusline's countdowns, burn rate, "reached at" and format.
//! * [`config`] — defaults, TOML file, `TOKENTRAY_*` environment.
//! * `testkit` (feature `testkit`) — builders of Claude Code-shaped requests, shared by tests,
//!   benchmarks and the load generator; not part of the shipped engine.
//!
//! Library code does not panic on input: each module has its own `thiserror` error type.
//!
//! The public surface is what the app (`src-tauri/`), the integration tests and the benches use,
//! and no more: each module above is a namespace holding its façade (its own items, re-exports, and
//! the few submodules callers name by path), every other item is `pub(crate)`, and
//! `core/public-api.txt` lists it (checked by `core/tests/public_api.rs`, so a change to it shows
//! in review). `unreachable_pub` and `missing_docs` keep it that way: warnings
//! here, errors in CI's `clippy -D warnings`.

#![warn(unreachable_pub, missing_docs)]

pub mod budget;
pub mod config;
pub mod dashboard;
pub mod doctor;
pub mod exposition;
pub mod forward;
mod fsutil;
pub mod ingest;
pub mod plan;
pub mod pricing;
mod pushgateway;
pub mod query;
pub mod receiver;
pub mod server;
pub mod setup;
pub mod signal;
pub mod statusline;
pub mod store;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod transcripts;
