//! The tray process's event loop, and the way other threads get events into it.
//!
//! On Linux it is GTK's main loop, which the tray icon (libayatana-appindicator) and its menus
//! need, fed by an async channel that a task on the main context drains: events queue, nothing
//! polls, and nothing runs re-entrantly inside a GTK signal. tao (Tauri's event loop) is not used
//! there, because its X11 backend starts a thread that receives every key press of the session
//! and wakes the loop for each, which an always-running tray has no use for. Elsewhere tao runs
//! the platform's loop (NSApplication, the Win32 message loop).

use super::tray::TrayEvent;
use super::DesktopError;

/// Sends events into the loop, from any thread.
#[derive(Clone)]
pub struct Sender {
    #[cfg(target_os = "linux")]
    tx: async_channel::Sender<TrayEvent>,
    #[cfg(not(target_os = "linux"))]
    proxy: tao::event_loop::EventLoopProxy<TrayEvent>,
}

impl Sender {
    /// Fails only once the loop has ended (Quit), when there is nothing left to show: ignored.
    pub fn send(&self, event: TrayEvent) {
        #[cfg(target_os = "linux")]
        let _ = self.tx.try_send(event);
        #[cfg(not(target_os = "linux"))]
        let _ = self.proxy.send_event(event);
    }

    /// Whether the loop has ended (on Linux; elsewhere only a send can tell, and this says no).
    pub fn is_closed(&self) -> bool {
        #[cfg(target_os = "linux")]
        return self.tx.is_closed();
        #[cfg(not(target_os = "linux"))]
        return false;
    }
}

pub struct EventLoop {
    #[cfg(target_os = "linux")]
    rx: async_channel::Receiver<TrayEvent>,
    #[cfg(not(target_os = "linux"))]
    inner: tao::event_loop::EventLoop<TrayEvent>,
}

impl EventLoop {
    /// Opens the display. Call on the main thread, before any tray icon or menu exists.
    #[cfg(target_os = "linux")]
    pub fn new() -> Result<(EventLoop, Sender), DesktopError> {
        gtk::init().map_err(|e| DesktopError::Display(e.to_string()))?;
        let (tx, rx) = async_channel::unbounded();
        Ok((EventLoop { rx }, Sender { tx }))
    }

    #[cfg(not(target_os = "linux"))]
    pub fn new() -> Result<(EventLoop, Sender), DesktopError> {
        let inner = tao::event_loop::EventLoopBuilder::<TrayEvent>::with_user_event().build();
        let proxy = inner.create_proxy();
        Ok((EventLoop { inner }, Sender { proxy }))
    }

    /// Runs until `on_event` returns `true` (Quit).
    #[cfg(target_os = "linux")]
    pub fn run(self, mut on_event: impl FnMut(TrayEvent) -> bool + 'static) {
        let rx = self.rx;
        gtk::glib::MainContext::default().spawn_local(async move {
            while let Ok(event) = rx.recv().await {
                if on_event(event) {
                    break;
                }
            }
            gtk::main_quit();
        });
        gtk::main();
    }

    #[cfg(not(target_os = "linux"))]
    pub fn run(mut self, mut on_event: impl FnMut(TrayEvent) -> bool + 'static) {
        use tao::event::Event;
        use tao::event_loop::ControlFlow;
        use tao::platform::run_return::EventLoopExtRunReturn;
        self.inner.run_return(|event, _, control_flow| {
            *control_flow = ControlFlow::Wait;
            if let Event::UserEvent(event) = event {
                if on_event(event) {
                    *control_flow = ControlFlow::ExitWithCode(0);
                }
            }
        });
    }
}
