//! Settings: defaults, then the TOML file, then `TOKENTRAY_*` environment variables; the CLI's
//! flags come last (applied by the binary).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("invalid config file {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("invalid value for {var}: {reason}")]
    Env { var: String, reason: String },
    #[error("no home directory found; pass --data-dir and --config")]
    NoHome,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: Listen,
    /// Where the database lives; the platform data directory when unset.
    pub data_dir: Option<PathBuf>,
    pub receiver: ReceiverConfig,
    pub privacy: PrivacyConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Listen {
    pub otlp_grpc: String,
    pub otlp_http: String,
    pub metrics: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiverConfig {
    /// Largest request body accepted, before and after decompression.
    pub max_body_bytes: usize,
    /// Browser origins allowed to post telemetry (`http://localhost:3000`); none by default, so a
    /// web page cannot post fake spend to the local receiver.
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Keep prompt and response text when Claude Code sends it (`OTEL_LOG_USER_PROMPTS=1`).
    /// Off: only lengths are kept.
    pub store_prompts: bool,
}

pub const DEFAULT_OTLP_GRPC: &str = "127.0.0.1:4317";
pub const DEFAULT_OTLP_HTTP: &str = "127.0.0.1:4318";
pub const DEFAULT_METRICS: &str = "127.0.0.1:8889";
pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;

impl Default for Listen {
    fn default() -> Self {
        Listen { otlp_grpc: DEFAULT_OTLP_GRPC.into(), otlp_http: DEFAULT_OTLP_HTTP.into(), metrics: DEFAULT_METRICS.into() }
    }
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig { max_body_bytes: DEFAULT_MAX_BODY, allowed_origins: Vec::new() }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config { listen: Listen::default(), data_dir: None, receiver: ReceiverConfig::default(), privacy: PrivacyConfig::default() }
    }
}

/// Platform directories (`~/.config/tokentray`, `~/.local/share/tokentray` on Linux).
pub fn project_dirs() -> Result<directories::ProjectDirs, ConfigError> {
    directories::ProjectDirs::from("dev", "tokentray", "tokentray").ok_or(ConfigError::NoHome)
}

pub fn default_config_path() -> Result<PathBuf, ConfigError> {
    Ok(project_dirs()?.config_dir().join("config.toml"))
}

impl Config {
    /// Reads the file if it exists (a missing file means defaults).
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.into(), reason: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(ConfigError::Read { path: path.into(), reason: e.to_string() }),
        }
    }

    /// Applies `TOKENTRAY_*` overrides from the given environment.
    pub fn apply_env<I: IntoIterator<Item = (String, String)>>(&mut self, vars: I) -> Result<(), ConfigError> {
        for (var, value) in vars {
            let bad = |reason: String| ConfigError::Env { var: var.clone(), reason };
            match var.as_str() {
                "TOKENTRAY_OTLP_GRPC" => self.listen.otlp_grpc = value,
                "TOKENTRAY_OTLP_HTTP" => self.listen.otlp_http = value,
                "TOKENTRAY_METRICS" => self.listen.metrics = value,
                "TOKENTRAY_DATA_DIR" => self.data_dir = Some(PathBuf::from(value)),
                "TOKENTRAY_MAX_BODY_BYTES" => self.receiver.max_body_bytes = value.parse().map_err(|e| bad(format!("{e}")))?,
                "TOKENTRAY_ALLOWED_ORIGINS" => {
                    self.receiver.allowed_origins = value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
                }
                "TOKENTRAY_STORE_PROMPTS" => {
                    self.privacy.store_prompts = match value.as_str() {
                        "1" | "true" | "yes" | "on" => true,
                        "0" | "false" | "no" | "off" | "" => false,
                        other => return Err(bad(format!("'{other}' is not a boolean"))),
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The data directory in effect.
    pub fn data_dir(&self) -> Result<PathBuf, ConfigError> {
        match &self.data_dir {
            Some(d) => Ok(d.clone()),
            None => Ok(project_dirs()?.data_dir().to_path_buf()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[listen]\nmetrics = \"127.0.0.1:9999\"\n[privacy]\nstore_prompts = true\n").expect("write");
        let mut c = Config::from_file(&path).expect("parses");
        assert_eq!(c.listen.metrics, "127.0.0.1:9999");
        assert_eq!(c.listen.otlp_grpc, DEFAULT_OTLP_GRPC);
        assert!(c.privacy.store_prompts);
        c.apply_env([("TOKENTRAY_METRICS".to_string(), "127.0.0.1:0".to_string()), ("TOKENTRAY_STORE_PROMPTS".into(), "0".into())]).expect("env");
        assert_eq!(c.listen.metrics, "127.0.0.1:0");
        assert!(!c.privacy.store_prompts);
        assert!(c.apply_env([("TOKENTRAY_MAX_BODY_BYTES".to_string(), "lots".to_string())]).is_err());
    }

    #[test]
    fn missing_file_is_defaults_and_typos_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(Config::from_file(&dir.path().join("none.toml")).expect("defaults"), Config::default());
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[listen]\nmetric = \"x\"\n").expect("write");
        let err = Config::from_file(&path).expect_err("unknown key");
        assert!(err.to_string().contains("metric"), "{err}");
    }
}
