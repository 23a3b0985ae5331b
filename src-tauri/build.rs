//! Build script of the `tokentray` package. With the `desktop` feature, `tauri_build` turns
//! `tauri.conf.json`, `capabilities/` and `icons/` (at the package root) into the app context and
//! permission manifests; without it there is nothing to generate, and no WebKit is needed.

fn main() {
    if std::env::var_os("CARGO_FEATURE_DESKTOP").is_some() {
        #[cfg(feature = "desktop")]
        tauri_build::build();
    }
}
