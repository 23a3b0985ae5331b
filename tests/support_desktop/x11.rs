//! The X display as a window manager sees it: which top-level windows are mapped, and closing one
//! the way a title bar's close button does (a `WM_DELETE_WINDOW` client message), so the app gets
//! a real close request. The headless session has no window manager, and WebDriver's "close
//! window" only destroys the webview inside, not the window.
//!
//! libX11 through x11-dl (already built for Tauri's windowing), loaded at run time.
// libX11 is a C API: every call below is an FFI call, each with its SAFETY comment.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_uint, c_ulong};

use x11_dl::xlib;

/// A mapped top-level window.
#[derive(Debug, Clone)]
pub struct TopLevel {
    pub id: c_ulong,
    pub name: String,
    pub width: i32,
    pub height: i32,
}

struct Conn {
    x: xlib::Xlib,
    display: *mut xlib::Display,
}

impl Conn {
    fn open() -> Conn {
        let x = xlib::Xlib::open().unwrap_or_else(|e| panic!("load libX11: {e}"));
        // SAFETY: XOpenDisplay with NULL reads $DISPLAY; the result is checked before use.
        let display = unsafe { (x.XOpenDisplay)(std::ptr::null()) };
        assert!(
            !display.is_null(),
            "cannot open the X display ($DISPLAY={:?})",
            std::env::var("DISPLAY")
        );
        Conn { x, display }
    }

    /// Mapped children of the root window (without a window manager, the app's frames).
    fn top_levels(&self) -> Vec<TopLevel> {
        let mut out = Vec::new();
        // SAFETY: plain Xlib calls on an open display; every returned buffer is freed with XFree
        // and read only within the lengths Xlib reports.
        unsafe {
            let root = (self.x.XDefaultRootWindow)(self.display);
            let (mut root_ret, mut parent_ret): (c_ulong, c_ulong) = (0, 0);
            let mut children: *mut c_ulong = std::ptr::null_mut();
            let mut n: c_uint = 0;
            if (self.x.XQueryTree)(
                self.display,
                root,
                &mut root_ret,
                &mut parent_ret,
                &mut children,
                &mut n,
            ) == 0
                || children.is_null()
            {
                return out;
            }
            for &w in std::slice::from_raw_parts(children, n as usize) {
                let mut attrs: xlib::XWindowAttributes = std::mem::zeroed();
                if (self.x.XGetWindowAttributes)(self.display, w, &mut attrs) == 0
                    || attrs.map_state != xlib::IsViewable
                {
                    continue;
                }
                let mut name_ptr: *mut c_char = std::ptr::null_mut();
                let name = if (self.x.XFetchName)(self.display, w, &mut name_ptr) != 0
                    && !name_ptr.is_null()
                {
                    let s = CStr::from_ptr(name_ptr).to_string_lossy().into_owned();
                    (self.x.XFree)(name_ptr.cast());
                    s
                } else {
                    String::new()
                };
                out.push(TopLevel { id: w, name, width: attrs.width, height: attrs.height });
            }
            (self.x.XFree)(children.cast());
        }
        out
    }

    fn atom(&self, name: &str) -> xlib::Atom {
        let c = CString::new(name).expect("atom name");
        // SAFETY: valid display and NUL-terminated name.
        unsafe { (self.x.XInternAtom)(self.display, c.as_ptr(), xlib::False) }
    }

    fn send_delete(&self, window: c_ulong) {
        let protocols = self.atom("WM_PROTOCOLS");
        let delete = self.atom("WM_DELETE_WINDOW");
        let mut data = xlib::ClientMessageData::new();
        data.set_long(0, delete as i64);
        data.set_long(1, xlib::CurrentTime as i64);
        let msg = xlib::XClientMessageEvent {
            type_: xlib::ClientMessage,
            serial: 0,
            send_event: xlib::True,
            display: self.display,
            window,
            message_type: protocols,
            format: 32,
            data,
        };
        let mut event = xlib::XEvent { client_message: msg };
        // SAFETY: a fully initialised ClientMessage event sent to a window of this display.
        unsafe {
            (self.x.XSendEvent)(self.display, window, xlib::False, xlib::NoEventMask, &mut event);
            (self.x.XSync)(self.display, xlib::False);
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // SAFETY: the display was opened by this value and is closed once.
        unsafe {
            (self.x.XCloseDisplay)(self.display);
        }
    }
}

/// Mapped top-level windows titled `name` and at least `min_width` wide (GTK also maps no
/// 10x10 leader, but a 16x16 tray fallback icon may carry the app's name).
pub fn windows(name: &str, min_width: i32) -> Vec<TopLevel> {
    Conn::open()
        .top_levels()
        .into_iter()
        .filter(|w| w.name == name && w.width >= min_width)
        .collect()
}

/// Asks every such window to close, as a window manager would. Returns how many were asked.
pub fn close(name: &str, min_width: i32) -> usize {
    let conn = Conn::open();
    let targets: Vec<TopLevel> =
        conn.top_levels().into_iter().filter(|w| w.name == name && w.width >= min_width).collect();
    for w in &targets {
        conn.send_delete(w.id);
    }
    targets.len()
}
