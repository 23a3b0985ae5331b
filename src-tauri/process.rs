//! What every long-running mode of the binary (`serve`, the tray, the window) does alike:
//! logging to stderr, and waiting for the signals that end it.

/// Logs go to stderr (stdout carries the `listening` line). `TOKENTRAY_LOG` sets the filter.
pub fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOKENTRAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// Resolves on SIGTERM (logout, `kill`, systemd stop) or SIGINT (Ctrl-C).
///
/// The handlers are installed by this call, not when the future is first polled: `serve` prints
/// its listening line before it awaits the future, and a SIGTERM right after that line used to
/// meet the default action (the process died of the signal, without its clean stop). Call it
/// inside a Tokio runtime (`Runtime::enter`), before announcing readiness.
pub fn terminated() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, Signal, SignalKind};
        async fn received(signal: Option<Signal>) {
            match signal {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        let terminate = signal(SignalKind::terminate()).ok();
        let interrupt = signal(SignalKind::interrupt()).ok();
        async move {
            tokio::select! {
                _ = received(terminate) => {},
                _ = received(interrupt) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `--otlp-grpc`, `--otlp-http`, `--metrics`: where the engine listens (`serve`, `tray`) or
/// where it was told to listen (`window`).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ListenArgs {
    /// OTLP/gRPC listen address (port 0 picks a free port)
    #[arg(long, value_name = "ADDR")]
    pub otlp_grpc: Option<String>,
    /// OTLP/HTTP listen address
    #[arg(long, value_name = "ADDR")]
    pub otlp_http: Option<String>,
    /// Prometheus /metrics listen address
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
}

impl ListenArgs {
    /// Flags win over the config file and the environment.
    pub fn apply(&self, listen: &mut tokentray_core::config::Listen) {
        if let Some(a) = &self.otlp_grpc {
            listen.otlp_grpc = a.clone();
        }
        if let Some(a) = &self.otlp_http {
            listen.otlp_http = a.clone();
        }
        if let Some(a) = &self.metrics {
            listen.metrics = a.clone();
        }
    }
}
