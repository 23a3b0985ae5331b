//! The tray as a panel sees it, over the session bus: a StatusNotifierWatcher that records the
//! item the app registers (libayatana-appindicator registers with `org.kde.StatusNotifierWatcher`
//! and exports its menu with dbusmenu), then the item's properties, its menu layout, and clicks.
//!
//! zbus 5's blocking API under the name `zbus5` (zbus 6, which notify-rust builds, has none).

use std::sync::{Arc, Mutex};
use std::time::Duration;

// zbus_macros 5 writes one path as `zbus::…` whatever `crate =` says: point that name at zbus 5.
use zbus5 as zbus;
use zbus5::blocking::Connection;
use zbus5::zvariant::{OwnedObjectPath, OwnedValue, Value};

const WATCHER: &str = "org.kde.StatusNotifierWatcher";
const ITEM_IFACE: &str = "org.kde.StatusNotifierItem";
const MENU_IFACE: &str = "com.canonical.dbusmenu";

struct WatcherIface {
    items: Arc<Mutex<Vec<(String, String)>>>,
}

#[zbus5::interface(name = "org.kde.StatusNotifierWatcher", crate = "zbus5")]
impl WatcherIface {
    /// appindicator passes its object path; other implementations pass a bus name.
    fn register_status_notifier_item(
        &self,
        service: &str,
        #[zbus(header)] header: zbus5::message::Header<'_>,
    ) {
        let sender = header.sender().map(|s| s.to_string()).unwrap_or_default();
        let entry = if service.starts_with('/') {
            (sender, service.to_string())
        } else {
            (service.to_string(), "/StatusNotifierItem".to_string())
        };
        if let Ok(mut items) = self.items.lock() {
            items.push(entry);
        }
    }

    fn register_status_notifier_host(&self, _service: &str) {}

    #[zbus(property)]
    fn registered_status_notifier_items(&self) -> Vec<String> {
        self.items
            .lock()
            .map(|i| i.iter().map(|(b, p)| format!("{b}{p}")).collect())
            .unwrap_or_default()
    }

    #[zbus(property)]
    fn is_status_notifier_host_registered(&self) -> bool {
        true
    }

    #[zbus(property)]
    fn protocol_version(&self) -> i32 {
        0
    }
}

/// Owns `org.kde.StatusNotifierWatcher` on the session bus while alive.
pub struct Watcher {
    conn: Connection,
    items: Arc<Mutex<Vec<(String, String)>>>,
}

impl Watcher {
    pub fn start() -> Watcher {
        let items = Arc::new(Mutex::new(Vec::new()));
        let conn = zbus5::blocking::connection::Builder::session()
            .and_then(|b| b.name(WATCHER))
            .and_then(|b| {
                b.serve_at("/StatusNotifierWatcher", WatcherIface { items: items.clone() })
            })
            .and_then(|b| b.build())
            .unwrap_or_else(|e| panic!("own {WATCHER} on the session bus: {e}"));
        Watcher { conn, items }
    }

    /// The first item registered after `skip` earlier ones.
    pub fn wait_item(&self, skip: usize, timeout: Duration) -> Option<Item> {
        super::wait_for(timeout, || self.items.lock().ok().and_then(|i| i.get(skip).cloned()))
            .map(|(bus, path)| Item { conn: self.conn.clone(), bus, path })
    }

    pub fn registered(&self) -> usize {
        self.items.lock().map(|i| i.len()).unwrap_or(0)
    }
}

/// One StatusNotifierItem.
pub struct Item {
    conn: Connection,
    pub bus: String,
    pub path: String,
}

/// A dbusmenu entry.
#[derive(Debug, Clone, Default)]
pub struct MenuNode {
    pub id: i32,
    /// Without GTK's mnemonic underscores.
    pub label: String,
    pub enabled: bool,
    pub visible: bool,
    pub separator: bool,
    pub toggle_type: String,
    /// 1 checked, 0 unchecked, -1 none.
    pub toggle_state: i32,
    pub children: Vec<MenuNode>,
}

impl MenuNode {
    /// Depth-first list of every entry below this one.
    pub fn flatten(&self) -> Vec<&MenuNode> {
        let mut out = Vec::new();
        for c in &self.children {
            out.push(c);
            out.extend(c.flatten());
        }
        out
    }

    pub fn find(&self, label_prefix: &str) -> Option<&MenuNode> {
        self.flatten().into_iter().find(|n| n.label.starts_with(label_prefix))
    }
}

fn node(v: &Value<'_>) -> Option<MenuNode> {
    let s = match v {
        Value::Value(inner) => return node(inner),
        Value::Structure(s) => s,
        _ => return None,
    };
    let fields = s.fields();
    let id = match fields.first()? {
        Value::I32(i) => *i,
        _ => return None,
    };
    let mut n =
        MenuNode { id, enabled: true, visible: true, toggle_state: -1, ..Default::default() };
    if let Some(Value::Dict(props)) = fields.get(1) {
        for (k, v) in props.iter() {
            let Value::Str(k) = k else { continue };
            let mut v = v;
            while let Value::Value(inner) = v {
                v = inner;
            }
            match (k.as_str(), v) {
                ("label", Value::Str(s)) => n.label = s.as_str().replace('_', ""),
                ("enabled", Value::Bool(b)) => n.enabled = *b,
                ("visible", Value::Bool(b)) => n.visible = *b,
                ("type", Value::Str(s)) => n.separator = s.as_str() == "separator",
                ("toggle-type", Value::Str(s)) => n.toggle_type = s.as_str().to_string(),
                ("toggle-state", Value::I32(i)) => n.toggle_state = *i,
                _ => {}
            }
        }
    }
    if let Some(Value::Array(children)) = fields.get(2) {
        n.children = children.iter().filter_map(node).collect();
    }
    Some(n)
}

/// Width, height and RGBA pixels of a PNG (any PNG colour type, expanded to 8-bit RGBA).
pub fn decode_png(bytes: &[u8]) -> Option<(u32, u32, Vec<u8>)> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(
        png::Transformations::normalize_to_color8() | png::Transformations::ALPHA,
    );
    let mut reader = decoder.read_info().ok()?;
    let mut buf = vec![0; reader.output_buffer_size()?];
    let frame = reader.next_frame(&mut buf).ok()?;
    buf.truncate(frame.buffer_size());
    Some((frame.width, frame.height, buf))
}

/// The desktop's settings portal as far as the tray asks it: `org.freedesktop.portal.Settings`
/// answering `Read("org.freedesktop.appearance", "color-scheme")` with a fixed preference
/// (1 dark, 2 light), owned on the session bus while alive.
pub struct Portal {
    _conn: Connection,
}

struct SettingsIface {
    color_scheme: u32,
}

#[zbus5::interface(name = "org.freedesktop.portal.Settings", crate = "zbus5")]
impl SettingsIface {
    /// Answers `v` holding a `v` holding the value, as xdg-desktop-portal's `Read` does.
    fn read(&self, namespace: &str, key: &str) -> zbus5::fdo::Result<OwnedValue> {
        if (namespace, key) != ("org.freedesktop.appearance", "color-scheme") {
            return Err(zbus5::fdo::Error::Failed(format!("no setting {namespace} {key}")));
        }
        OwnedValue::try_from(Value::Value(Box::new(Value::U32(self.color_scheme))))
            .map_err(|e| zbus5::fdo::Error::Failed(e.to_string()))
    }
}

impl Portal {
    pub fn start(color_scheme: u32) -> Portal {
        let conn = zbus5::blocking::connection::Builder::session()
            .and_then(|b| b.name("org.freedesktop.portal.Desktop"))
            .and_then(|b| {
                b.serve_at("/org/freedesktop/portal/desktop", SettingsIface { color_scheme })
            })
            .and_then(|b| b.build())
            .unwrap_or_else(|e| {
                panic!("own org.freedesktop.portal.Desktop on the session bus: {e}")
            });
        Portal { _conn: conn }
    }
}

impl Item {
    fn property(&self, iface: &str, name: &str) -> Result<OwnedValue, String> {
        let reply = self
            .conn
            .call_method(
                Some(self.bus.as_str()),
                self.path.as_str(),
                Some("org.freedesktop.DBus.Properties"),
                "Get",
                &(iface, name),
            )
            .map_err(|e| format!("Get {iface}.{name}: {e}"))?;
        reply.body().deserialize::<OwnedValue>().map_err(|e| format!("Get {iface}.{name}: {e}"))
    }

    fn string_property(&self, name: &str) -> String {
        match self.property(ITEM_IFACE, name) {
            Ok(v) => match &*v {
                Value::Str(s) => s.as_str().to_string(),
                Value::Value(inner) => match &**inner {
                    Value::Str(s) => s.as_str().to_string(),
                    other => format!("{other:?}"),
                },
                other => format!("{other:?}"),
            },
            Err(e) => format!("<{e}>"),
        }
    }

    /// The text next to the icon (appindicator's label, which `TrayIcon::set_title` sets).
    pub fn label(&self) -> String {
        self.string_property("XAyatanaLabel")
    }

    pub fn title(&self) -> String {
        self.string_property("Title")
    }

    /// `IconName`: with tray-icon on appindicator, the path of a PNG it wrote for this icon.
    pub fn icon_name(&self) -> String {
        self.string_property("IconName")
    }

    /// The icon's pixels as a panel would load them: `IconPixmap` when the item exports one
    /// (ARGB32, converted to RGBA), else the PNG that `IconName` names (a path, or a name in
    /// `IconThemePath`). `None` while there is nothing to read (the file is being replaced).
    pub fn icon_rgba(&self) -> Option<(u32, u32, Vec<u8>)> {
        if let Some(pixmap) = self.icon_pixmap() {
            return Some(pixmap);
        }
        let name = self.icon_name();
        let path = if name.starts_with('/') {
            std::path::PathBuf::from(&name)
        } else {
            std::path::Path::new(&self.string_property("IconThemePath")).join(format!("{name}.png"))
        };
        decode_png(&std::fs::read(path).ok()?)
    }

    /// The largest `IconPixmap` entry, if any.
    fn icon_pixmap(&self) -> Option<(u32, u32, Vec<u8>)> {
        let v = self.property(ITEM_IFACE, "IconPixmap").ok()?;
        let list: Vec<(i32, i32, Vec<u8>)> = v.try_into().ok()?;
        let (w, h, argb) = list.into_iter().max_by_key(|(w, h, _)| w * h)?;
        let rgba = argb.chunks_exact(4).flat_map(|p| [p[1], p[2], p[3], p[0]]).collect();
        Some((u32::try_from(w).ok()?, u32::try_from(h).ok()?, rgba))
    }

    fn menu_path(&self) -> String {
        let v = self.property(ITEM_IFACE, "Menu").unwrap_or_else(|e| panic!("{e}"));
        let p: OwnedObjectPath =
            v.try_into().unwrap_or_else(|e| panic!("Menu is not an object path: {e}"));
        p.as_str().to_string()
    }

    /// The whole menu (`GetLayout(0, -1, [])`).
    pub fn menu(&self) -> MenuNode {
        let path = self.menu_path();
        let reply = self
            .conn
            .call_method(
                Some(self.bus.as_str()),
                path.as_str(),
                Some(MENU_IFACE),
                "GetLayout",
                &(0i32, -1i32, Vec::<String>::new()),
            )
            .unwrap_or_else(|e| panic!("GetLayout: {e}"));
        let body = reply.body();
        // `(u revision, (ia{sv}av) layout)`
        let reply: zbus5::zvariant::Structure<'_> =
            body.deserialize().unwrap_or_else(|e| panic!("GetLayout reply: {e}"));
        reply
            .fields()
            .get(1)
            .and_then(node)
            .unwrap_or_else(|| panic!("GetLayout: unexpected layout shape {reply:?}"))
    }

    /// What a panel sends when the user clicks an entry.
    pub fn click(&self, id: i32) {
        let path = self.menu_path();
        // Panels announce the menu before showing it; GTK's exporter expects that order.
        let _ = self.conn.call_method(
            Some(self.bus.as_str()),
            path.as_str(),
            Some(MENU_IFACE),
            "AboutToShow",
            &(0i32,),
        );
        let timestamp = 0u32;
        self.conn
            .call_method(
                Some(self.bus.as_str()),
                path.as_str(),
                Some(MENU_IFACE),
                "Event",
                &(id, "clicked", Value::I32(0), timestamp),
            )
            .unwrap_or_else(|e| panic!("Event {id} clicked: {e}"));
    }
}
