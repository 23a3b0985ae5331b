//! The tray process: one per user session, with the engine inside and no webview of its own.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use tauri::{Manager, RunEvent};
use tokentray_core::config::Config;

use super::engine::Engine;
use super::launcher::Launcher;
use super::{autostart, context, live, tray, DesktopError, Launch, Shared, TrayArgs};
use crate::process::{init_logging, terminated};

/// The engine, reachable from `setup` (which starts it) and from `run` (which stops it after the
/// event loop ended).
type EngineSlot = Arc<Mutex<Option<Engine>>>;

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
    let open_now = args.open;
    let engine_slot: EngineSlot = Arc::new(Mutex::new(None));
    let slot = engine_slot.clone();
    let launcher_slot: Arc<Mutex<Option<Arc<Launcher>>>> = Arc::new(Mutex::new(None));
    let launcher_for_setup = launcher_slot.clone();

    let app = tauri::Builder::default()
        // First: a second launch must find the first before it binds anything. It hands over and
        // exits inside `build()`; the first one opens its window.
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            tracing::info!("another launch: opening the window");
            if let Some(launcher) = app.try_state::<Arc<Launcher>>() {
                launcher.open_logged();
            }
        }))
        .plugin(tauri_plugin_autostart::Builder::new().args(autostart::args(&launch)).build())
        .setup(move |app| {
            // Errors returned from here make Tauri panic: report them and exit instead.
            match setup(app.handle(), &config, &launch, &slot, open_now, gl_set_here) {
                Ok(launcher) => {
                    if let Ok(mut l) = launcher_for_setup.lock() {
                        *l = Some(launcher);
                    }
                }
                Err(e) => {
                    eprintln!("tokentray: {e}");
                    app.handle().exit(1);
                }
            }
            Ok(())
        })
        .build(context())?;

    let code = app.run_return(|_app, event| {
        // The tray process has no window; only Quit (an explicit exit code) ends it.
        if let RunEvent::ExitRequested { code: None, api, .. } = event {
            api.prevent_exit();
        }
    });

    // The window goes first (it reads the history), then the engine.
    if let Some(launcher) = launcher_slot.lock().ok().and_then(|mut l| l.take()) {
        launcher.close();
    }
    if let Some(mut engine) = engine_slot.lock().ok().and_then(|mut e| e.take()) {
        engine.stop();
    }
    tracing::info!(code, "exited");
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

fn setup(app: &tauri::AppHandle, config: &Config, launch: &Launch, slot: &EngineSlot, open_now: bool, gl_set_here: bool) -> Result<Arc<Launcher>, DesktopError> {
    let mut engine = Engine::start(config)?;
    if let Some(problem) = engine.status.problem() {
        tracing::warn!("{problem}");
    }
    match crate::alerts::for_tray(&config.alerts) {
        Ok(notifiers) => engine.start_budgets(config, Arc::new(notifiers)),
        Err(e) => tracing::warn!("budget alerts are off: {e:#}"),
    }
    engine.start_forwarding(config);
    let launcher = Arc::new(Launcher::new(&engine, launch, gl_set_here)?);
    app.manage(launcher.clone());
    let shared = Arc::new(Shared::new(config, engine.data_dir.clone(), engine.endpoints.clone()));
    app.manage(shared.clone());
    autostart::enable_on_first_run(app, &engine.data_dir);
    let tray = tray::Tray::build(app, &engine.status)?;
    app.manage(tray.clone());
    live::spawn(&engine, shared, tray, launcher.clone());
    // A session logout or `kill` ends the app as Quit does: window first, then the engine.
    let handle = app.clone();
    engine.handle().spawn(async move {
        terminated().await;
        tracing::info!("signal received: quitting");
        handle.exit(0);
    });
    if let Ok(mut s) = slot.lock() {
        *s = Some(engine);
    }
    if open_now {
        launcher.open()?;
    }
    Ok(launcher)
}
