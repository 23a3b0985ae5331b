//! The window's files (`ui/`), compiled into the binary so that the page served on the metrics
//! listener needs nothing on disk and nothing from the network.

/// `ui/index.html`.
pub(crate) const INDEX_HTML: &str = include_str!("../../../ui/index.html");
/// `ui/app.js`.
pub(crate) const APP_JS: &str = include_str!("../../../ui/app.js");
/// `ui/style.css`.
pub(crate) const STYLE_CSS: &str = include_str!("../../../ui/style.css");
