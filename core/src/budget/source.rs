//! The budgets in effect for a long-running reader (the dashboard page, the window, the tray):
//! those of the config it started with, re-read when the config file changes, so a
//! `tokentray budget set` shows up without a restart. The evaluator follows the file through one
//! too (`Evaluator::reload_budgets_from`).

use std::path::PathBuf;
use std::sync::Mutex;

use crate::config::{file_stamp, BudgetsConfig, Config, FileStamp};

/// Where the budgets come from: fixed, or the `[budgets]` table of a config file, re-read when the
/// file's [`FileStamp`] changes so `tokentray budget set` and window edits apply without a restart.
pub struct BudgetsSource {
    file: Option<PathBuf>,
    /// The file's stamp when last read, and the budgets then in effect.
    cache: Mutex<(Option<FileStamp>, BudgetsConfig)>,
}

impl BudgetsSource {
    /// The budgets of `config`, followed in `config.source` when it has one.
    pub fn of(config: &Config) -> BudgetsSource {
        match &config.source {
            Some(file) => BudgetsSource::following(file.clone(), config.budgets.clone()),
            None => BudgetsSource::fixed(config.budgets.clone()),
        }
    }

    /// Fixed budgets, following no file (tests, a config without a file).
    pub fn fixed(budgets: BudgetsConfig) -> BudgetsSource {
        BudgetsSource { file: None, cache: Mutex::new((None, budgets)) }
    }

    /// `initial`, replaced by the `[budgets]` of `file` whenever the file changes.
    pub fn following(file: PathBuf, initial: BudgetsConfig) -> BudgetsSource {
        let seen = file_stamp(&file);
        BudgetsSource { file: Some(file), cache: Mutex::new((seen, initial)) }
    }

    /// The config file followed (where edits from the window are written).
    pub fn file(&self) -> Option<&std::path::Path> {
        self.file.as_deref()
    }

    /// The budgets now: re-read if the file changed since the last call. A file that cannot be
    /// read or parsed keeps the budgets last in effect (and says so in the log).
    pub fn current(&self) -> BudgetsConfig {
        let Ok(mut cache) = self.cache.lock() else {
            return BudgetsConfig::default();
        };
        if let Some(path) = &self.file {
            let now = file_stamp(path);
            if now != cache.0 {
                cache.0 = now;
                match Config::from_file(path) {
                    Ok(config) => {
                        if config.budgets != cache.1 {
                            tracing::info!(
                                budgets = super::budgets(&config.budgets).len(),
                                "budgets reloaded from the config file"
                            );
                        }
                        cache.1 = config.budgets;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "config file changed but cannot be read; keeping the budgets in effect")
                    }
                }
            }
        }
        cache.1.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_edits_of_the_config_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        let config = Config::from_file(&path).expect("missing file is defaults");
        let source = BudgetsSource::of(&config);
        assert!(source.current().daily.is_none());

        std::fs::write(&path, "[budgets]\ndaily = 20\n").expect("write");
        assert_eq!(source.current().daily.map(|d| d.limit_usd), Some(20.0));

        // A broken edit keeps the last good budgets.
        std::fs::write(&path, "[budgets\ndaily = ").expect("write");
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(later))
            .expect("touch");
        assert_eq!(source.current().daily.map(|d| d.limit_usd), Some(20.0));
    }
}
