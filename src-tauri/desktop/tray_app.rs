//! The tray process: one per user session, with the engine inside and no webview of its own.
//!
//! Order matters: GTK first (the single-instance check needs it), then the check, before any
//! port is bound; then the engine, the tray (and a look for a tray host to show it), and the
//! event loop until Quit; then the window process and the engine are ended, in that order (the
//! window reads the history).

use std::process::ExitCode;
use std::sync::Arc;

use tokentray_core::config::Config;

use super::autostart::LoginEntry;
use super::engine::Engine;
use super::event_loop::EventLoop;
use super::launcher::Launcher;
use super::single_instance::{self, Instance};
use super::tray::{self, MenuContext, Tray, TrayHandle};
use super::{live, DesktopError, Launch, Shared, TrayArgs};
use crate::process::{init_logging, terminated};

pub fn run(mut config: Config, args: TrayArgs, launch: Launch) -> Result<ExitCode, DesktopError> {
    init_logging();
    // GTK 3 opens an OpenGL context when it opens the display, to choose visuals: that loads
    // Mesa (with llvmpipe or a GPU driver, ~50 MiB resident) into a process that never draws
    // with GL. Set before GTK starts and before any thread exists; the window process, which
    // may use GL, gets the variable as the user had it.
    let gl_set_here = std::env::var_os("GDK_GL").is_none();
    if gl_set_here {
        std::env::set_var("GDK_GL", "disable");
    }
    args.listen.apply(&mut config.listen);

    let (event_loop, sender) = EventLoop::new()?;
    let handle = TrayHandle::new(sender);

    let second_launch = handle.clone();
    let _instance = match single_instance::claim(move || {
        tracing::info!("another launch: opening the window");
        second_launch.open_window();
    }) {
        Instance::First(guard) => guard,
        Instance::Second => return Ok(ExitCode::SUCCESS),
    };

    let mut engine = Engine::start(&config)?;
    let started = start(&mut engine, &config, &args, &launch, gl_set_here, &handle);
    let (mut tray, ctx) = match started {
        Ok(parts) => parts,
        Err(e) => {
            engine.stop();
            return Err(e);
        }
    };
    let launcher = ctx.launcher.clone();

    event_loop.run(move |event| tray.handle(event, &ctx));

    // The window goes first (it reads the history), then the engine.
    launcher.close();
    engine.stop();
    tracing::info!("exited");
    Ok(ExitCode::SUCCESS)
}

/// Everything after the engine: alerts, forwarding, the window launcher, the login entry, the
/// tray and what keeps it current.
fn start(
    engine: &mut Engine,
    config: &Config,
    args: &TrayArgs,
    launch: &Launch,
    gl_set_here: bool,
    handle: &TrayHandle,
) -> Result<(Tray, MenuContext), DesktopError> {
    if let Some(problem) = engine.status.problem() {
        tracing::warn!("{problem}");
    }
    match crate::alerts::for_tray(&config.alerts) {
        Ok(notifiers) => engine.start_budgets(config, Arc::new(notifiers)),
        Err(e) => tracing::warn!("budget alerts are off: {e:#}"),
    }
    engine.start_forwarding(config);
    let launcher = Arc::new(Launcher::new(engine, launch, gl_set_here)?);
    let shared = Arc::new(Shared::new(config, engine.data_dir.clone(), engine.endpoints.clone()));
    let login = LoginEntry::new(launch)
        .inspect_err(|e| tracing::warn!("start at login is not available: {e}"))
        .ok();
    let tray = Tray::build(&engine.status, login.as_ref())?;
    handle.follow_menu();
    // Start-at-login is turned on by a first run only where the icon can be seen: without a
    // tray host the app says so and opens the window instead (`TrayEvent::Host`).
    tray::watch_host(handle);
    live::spawn(engine, shared.clone(), handle.clone(), launcher.clone());
    // A session logout or `kill` ends the app as Quit does: window first, then the engine.
    let quit = handle.clone();
    engine.handle().spawn(async move {
        terminated().await;
        tracing::info!("signal received: quitting");
        quit.quit();
    });
    if args.open {
        launcher.open()?;
    }
    Ok((tray, MenuContext { launcher, shared, login }))
}
