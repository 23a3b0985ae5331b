//! `tokentray setup` as a user runs it, over temporary HOMEs: Claude Code's settings file absent,
//! holding other keys, holding an `env` block, holding invalid JSON, under `CLAUDE_CONFIG_DIR`;
//! `--dry-run`, idempotence, `--undo`, and managed settings that pin another endpoint. (That
//! the real Claude Code CLI then sends its data with no other configuration is in
//! tests/claude_cli.rs.) `setup --agent codex|gemini` (issue 17) over the same HOMEs: Codex's
//! `config.toml` and Gemini CLI's `settings.json` absent, holding other keys and sections,
//! invalid, and `$CODEX_HOME`; the real CLIs configured only by those files: tests/agents_cli.rs.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::Builder::new()
                .prefix("tokentray-setup-home-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn settings(&self) -> PathBuf {
        self.home().join(".claude/settings.json")
    }

    fn write_settings(&self, text: &str) {
        std::fs::create_dir_all(self.home().join(".claude")).expect("mkdir");
        std::fs::write(self.settings(), text).expect("write settings");
    }

    /// `tokentray --config C setup ARGS` with this HOME; the engine configured on ports 5317/5318.
    fn setup(&self, args: &[&str], env: &[(&str, &Path)]) -> Output {
        let config = self.dir.path().join("config.toml");
        std::fs::write(
            &config,
            "[listen]\notlp_grpc = \"127.0.0.1:5317\"\notlp_http = \"127.0.0.1:5318\"\n",
        )
        .expect("write config");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokentray"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("TOKENTRAY_")
                || k == "CLAUDE_CONFIG_DIR"
                || k == "CODEX_HOME"
            {
                cmd.env_remove(&k);
            }
        }
        cmd.env("HOME", self.home())
            .env(
                "TOKENTRAY_CLAUDE_MANAGED_SETTINGS",
                self.dir.path().join("no-managed-settings.json"),
            )
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .arg("--config")
            .arg(&config)
            .arg("setup")
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run tokentray setup")
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())),
    )
    .expect("valid JSON")
}

fn assert_points_at_tokentray(v: &Value, protocol: &str, endpoint: &str) {
    let env = &v["env"];
    for (k, want) in [
        ("CLAUDE_CODE_ENABLE_TELEMETRY", "1"),
        ("OTEL_METRICS_EXPORTER", "otlp"),
        ("OTEL_LOGS_EXPORTER", "otlp"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
    ] {
        assert_eq!(env[k], want, "{k} in {v:#}");
    }
}

#[test]
fn absent_settings_are_created_and_undo_removes_them() {
    let h = Home::new();
    let out = h.setup(&[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("grpc → http://127.0.0.1:5317"), "{}", text(&out));
    assert_points_at_tokentray(&read_json(&h.settings()), "grpc", "http://127.0.0.1:5317");

    let again = h.setup(&[], &[]);
    assert!(again.status.success() && text(&again).contains("already set up"), "{}", text(&again));

    let undo = h.setup(&["--undo"], &[]);
    assert!(undo.status.success(), "{}", text(&undo));
    assert!(!h.settings().exists(), "settings.json should be gone again");
}

#[test]
fn other_keys_and_an_existing_env_block_are_kept_and_undo_restores_the_bytes() {
    let h = Home::new();
    let original = "{\n  \"model\": \"opus\",\n  \"env\": {\n    \"HTTPS_PROXY\": \"http://proxy:3128\",\n    \"OTEL_EXPORTER_OTLP_ENDPOINT\": \"http://old-collector:4317\"\n  },\n  \"permissions\": { \"deny\": [\"Read(./.env)\"] }\n}\n";
    h.write_settings(original);
    let out = h.setup(&["--protocol", "http/protobuf"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let v = read_json(&h.settings());
    assert_points_at_tokentray(&v, "http/protobuf", "http://127.0.0.1:5318");
    assert_eq!(v["model"], "opus");
    assert_eq!(v["env"]["HTTPS_PROXY"], "http://proxy:3128");
    assert_eq!(v["permissions"]["deny"][0], "Read(./.env)");
    let keys: Vec<&str> = v.as_object().expect("object").keys().map(String::as_str).collect();
    assert_eq!(keys, ["model", "env", "permissions"]);

    let undo = h.setup(&["--undo"], &[]);
    assert!(undo.status.success(), "{}", text(&undo));
    assert_eq!(
        std::fs::read_to_string(h.settings()).expect("read"),
        original,
        "undo restores the file byte for byte"
    );
    let again = h.setup(&["--undo"], &[]);
    assert!(
        !again.status.success() && text(&again).contains("nothing to undo"),
        "{}",
        text(&again)
    );
}

#[test]
fn dry_run_shows_the_diff_and_writes_nothing() {
    let h = Home::new();
    h.write_settings("{\n  \"model\": \"sonnet\"\n}\n");
    let out = h.setup(&["--dry-run"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("+  \"env\": {")
            && t.contains("+    \"OTEL_EXPORTER_OTLP_ENDPOINT\": \"http://127.0.0.1:5317\""),
        "{t}"
    );
    assert!(t.contains("dry run: nothing written"), "{t}");
    assert_eq!(
        std::fs::read_to_string(h.settings()).expect("read"),
        "{\n  \"model\": \"sonnet\"\n}\n"
    );
    let siblings: Vec<_> = std::fs::read_dir(h.home().join(".claude"))
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(siblings.len(), 1, "no backup or temp file: {siblings:?}");
}

#[test]
fn invalid_json_is_a_clear_error_and_nothing_is_written() {
    let h = Home::new();
    let broken = "{\n  \"model\": \"opus\",\n}\n";
    h.write_settings(broken);
    let out = h.setup(&[], &[]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains("is not valid JSON")
            && t.contains("line 3")
            && t.contains("nothing was written"),
        "{t}"
    );
    assert_eq!(std::fs::read_to_string(h.settings()).expect("read"), broken);
    assert_eq!(
        std::fs::read_dir(h.home().join(".claude")).expect("ls").count(),
        1,
        "no backup written"
    );
}

#[test]
fn claude_config_dir_is_respected() {
    let h = Home::new();
    let custom = h.dir.path().join("claude-config");
    let out = h.setup(&[], &[("CLAUDE_CONFIG_DIR", &custom)]);
    assert!(out.status.success(), "{}", text(&out));
    assert_points_at_tokentray(
        &read_json(&custom.join("settings.json")),
        "grpc",
        "http://127.0.0.1:5317",
    );
    assert!(!h.settings().exists(), "~/.claude/settings.json must not be touched");
}

#[test]
fn managed_settings_pinning_another_endpoint_are_explained() {
    let h = Home::new();
    let managed = h.dir.path().join("managed-settings.json");
    std::fs::write(
        &managed,
        r#"{"env": {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otel.corp.example:4317"}}"#,
    )
    .expect("write");
    let out = h.setup(&[], &[("TOKENTRAY_CLAUDE_MANAGED_SETTINGS", &managed)]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains("managed settings")
            && t.contains("https://otel.corp.example:4317")
            && t.contains("OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:5317"),
        "{t}"
    );
    assert!(!h.settings().exists());
}

/// Issue 16: the user edits the file between two setups; `--statusline` keeps their protocol;
/// undo takes out only what tokentray added, keeps what the user added, and names the key of
/// ours they changed by hand (which stays).
#[test]
fn undo_after_a_user_edit_removes_only_what_tokentray_added() {
    let h = Home::new();
    h.write_settings(
        "{\n  \"model\": \"opus\",\n  \"permissions\": {\n    \"allow\": []\n  }\n}\n",
    );
    let first = h.setup(&["--protocol", "http/protobuf"], &[]);
    assert!(first.status.success(), "{}", text(&first));

    // The user's edit: their own status line and an env key of theirs.
    let mut v = read_json(&h.settings());
    v["statusLine"] = serde_json::json!({"type": "command", "command": "printf mine"});
    v["env"]["MY_VAR"] = Value::String("kept".into());
    h.write_settings(&(serde_json::to_string_pretty(&v).expect("json") + "\n"));

    let second = h.setup(&["--statusline"], &[]);
    assert!(second.status.success(), "{}", text(&second));
    let v = read_json(&h.settings());
    assert_eq!(
        v["env"]["OTEL_EXPORTER_OTLP_PROTOCOL"], "http/protobuf",
        "the user's protocol is kept: {v}"
    );
    assert_eq!(v["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://127.0.0.1:5318");
    let command = v["statusLine"]["command"].as_str().unwrap_or_default();
    assert!(command.contains("--after 'printf mine'"), "{command}");

    // Then one of tokentray's keys changed by hand.
    let mut v = read_json(&h.settings());
    v["env"]["OTEL_METRIC_EXPORT_INTERVAL"] = Value::String("30000".into());
    h.write_settings(&(serde_json::to_string_pretty(&v).expect("json") + "\n"));

    let undo = h.setup(&["--undo"], &[]);
    assert!(undo.status.success(), "{}", text(&undo));
    assert!(
        String::from_utf8_lossy(&undo.stderr)
            .contains("OTEL_METRIC_EXPORT_INTERVAL changed by hand"),
        "{}",
        text(&undo)
    );
    let after = std::fs::read_to_string(h.settings()).expect("read");
    let v: Value = serde_json::from_str(&after).expect("json");
    assert_eq!(v["statusLine"]["command"], "printf mine", "the user's status line is back: {v}");
    assert_eq!(v["env"]["MY_VAR"], "kept");
    assert_eq!(v["env"]["OTEL_METRIC_EXPORT_INTERVAL"], "30000", "changed by hand: stays");
    for ours in [
        "CLAUDE_CODE_ENABLE_TELEMETRY",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_METRICS_EXPORTER",
    ] {
        assert!(v["env"].get(ours).is_none(), "{ours} removed: {v}");
    }
    assert_eq!(v["model"], "opus");
    assert!(after.find("\"model\"") < after.find("\"permissions\""), "key order kept: {after}");
    let leftovers: Vec<_> = std::fs::read_dir(h.home().join(".claude"))
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n != "settings.json")
        .collect();
    assert!(leftovers.is_empty(), "no tokentray files left: {leftovers:?}");
}

// --- setup --agent codex | gemini (issue 17) ----------------------------------------------------

impl Home {
    fn codex_config(&self) -> PathBuf {
        self.home().join(".codex/config.toml")
    }

    fn gemini_settings(&self) -> PathBuf {
        self.home().join(".gemini/settings.json")
    }

    fn write(&self, path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
}

fn read_toml(path: &Path) -> toml::Table {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .parse()
        .expect("valid TOML")
}

fn siblings(path: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(path.parent().expect("parent"))
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The three exporters of `[otel]`, as Codex reads them (`exporter` = logs).
fn codex_exporters(t: &toml::Table) -> [String; 3] {
    ["exporter", "trace_exporter", "metrics_exporter"].map(|k| t["otel"][k].to_string())
}

#[test]
fn codex_absent_config_is_created_with_all_three_exporters_and_undo_removes_it() {
    let h = Home::new();
    let out = h.setup(&["--agent", "codex"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("Codex CLI now sends its logs, traces and metrics"), "{t}");
    assert!(
        t.contains("statsig (OpenAI's own metrics endpoint)"),
        "the default metrics exporter it replaces is named: {t}"
    );
    let cfg = read_toml(&h.codex_config());
    for (key, v) in
        ["exporter", "trace_exporter", "metrics_exporter"].iter().zip(codex_exporters(&cfg))
    {
        assert_eq!(
            cfg["otel"][key]["otlp-grpc"]["endpoint"].as_str(),
            Some("http://127.0.0.1:5317"),
            "otel.{key} = {v}"
        );
    }
    assert!(!h.settings().exists(), "Claude Code's settings are not touched");

    let again = h.setup(&["--agent", "codex"], &[]);
    assert!(again.status.success() && text(&again).contains("already set up"), "{}", text(&again));

    let undo = h.setup(&["--agent", "codex", "--undo"], &[]);
    assert!(undo.status.success(), "{}", text(&undo));
    assert!(!h.codex_config().exists(), "config.toml should be gone again");
    assert!(siblings(&h.codex_config()).is_empty(), "{:?}", siblings(&h.codex_config()));
}

#[test]
fn codex_other_keys_sections_and_formatting_are_kept_and_undo_restores_the_bytes() {
    let h = Home::new();
    // A user's config: comments, a provider section, and a metrics exporter of their own whose
    // header holds a credential (it must never be printed).
    let original = "# my Codex config\nmodel = \"gpt-5-codex\"   # pinned\nmodel_provider = \"corp\"\n\n[model_providers.corp]\nname = \"corp\"\nbase_url = \"https://llm.corp.example/v1\"\n\n[otel]\nenvironment = \"prod\"\nmetrics_exporter = { otlp-http = { endpoint = \"https://otel.corp.example/v1/metrics\", protocol = \"binary\", headers = { \"x-api-key\" = \"SECRET-123\" } } }\n\n[tui]\nnotifications = true\n";
    h.write(&h.codex_config(), original);

    let dry = h.setup(&["--agent", "codex", "--protocol", "http/protobuf", "--dry-run"], &[]);
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(
        text(&dry).contains("+exporter = { otlp-http = { endpoint = \"http://127.0.0.1:5318/v1/logs\", protocol = \"binary\" } }"),
        "{}",
        text(&dry)
    );
    assert_eq!(std::fs::read_to_string(h.codex_config()).expect("read"), original);
    assert_eq!(siblings(&h.codex_config()), ["config.toml"], "dry run writes nothing");

    let out = h.setup(&["--agent", "codex", "--protocol", "http/protobuf"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("Replaced: otel.metrics_exporter sent Codex's metrics to otlp-http https://otel.corp.example/v1/metrics"),
        "the replaced metrics exporter is named: {t}"
    );
    assert!(!t.contains("SECRET-123"), "a header value was printed: {t}");
    let after = std::fs::read_to_string(h.codex_config()).expect("read");
    assert!(
        after.starts_with("# my Codex config\nmodel = \"gpt-5-codex\"   # pinned\n"),
        "{after}"
    );
    assert!(after.contains("[tui]\nnotifications = true\n"), "{after}");
    let cfg = read_toml(&h.codex_config());
    assert_eq!(
        cfg["model_providers"]["corp"]["base_url"].as_str(),
        Some("https://llm.corp.example/v1")
    );
    assert_eq!(cfg["otel"]["environment"].as_str(), Some("prod"));
    for (key, path) in
        [("exporter", "logs"), ("trace_exporter", "traces"), ("metrics_exporter", "metrics")]
    {
        let e = &cfg["otel"][key]["otlp-http"];
        assert_eq!(
            e["endpoint"].as_str(),
            Some(format!("http://127.0.0.1:5318/v1/{path}").as_str()),
            "{after}"
        );
        assert_eq!(e["protocol"].as_str(), Some("binary"), "{after}");
    }

    // Running again keeps the protocol the file names.
    let again = h.setup(&["--agent", "codex"], &[]);
    assert!(again.status.success() && text(&again).contains("already set up"), "{}", text(&again));

    let undo = h.setup(&["--agent", "codex", "--undo"], &[]);
    assert!(undo.status.success(), "{}", text(&undo));
    assert_eq!(
        std::fs::read_to_string(h.codex_config()).expect("read"),
        original,
        "undo restores the file byte for byte"
    );
    assert_eq!(siblings(&h.codex_config()), ["config.toml"]);
}

#[test]
fn codex_undo_after_a_user_edit_takes_out_only_the_exporters() {
    let h = Home::new();
    h.write(&h.codex_config(), "model = \"gpt-5-codex\"\n");
    let out = h.setup(&["--agent", "codex"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let edited = std::fs::read_to_string(h.codex_config()).expect("read")
        + "\n[history]\npersistence = \"none\"\n";
    h.write(&h.codex_config(), &edited);
    let undo = h.setup(&["--agent", "codex", "--undo"], &[]);
    assert!(undo.status.success(), "{}", text(&undo));
    let cfg = read_toml(&h.codex_config());
    assert!(cfg.get("otel").is_none(), "[otel] was ours and is gone: {cfg}");
    assert_eq!(cfg["history"]["persistence"].as_str(), Some("none"), "the user's edit stays");
    assert_eq!(cfg["model"].as_str(), Some("gpt-5-codex"));
}

#[test]
fn codex_invalid_toml_is_refused_with_exit_1_and_nothing_written() {
    let h = Home::new();
    let broken = "model = \"gpt-5-codex\"\n[otel\nexporter = 3\n";
    h.write(&h.codex_config(), broken);
    let out = h.setup(&["--agent", "codex"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.starts_with("tokentray: ")
            && t.contains("is not valid TOML")
            && t.contains("line 2")
            && t.contains("nothing was written"),
        "{t}"
    );
    assert_eq!(std::fs::read_to_string(h.codex_config()).expect("read"), broken);
    assert_eq!(siblings(&h.codex_config()), ["config.toml"], "no backup written");
}

#[test]
fn codex_home_is_respected() {
    let h = Home::new();
    let custom = h.dir.path().join("codex-home");
    let out = h.setup(&["--agent", "codex"], &[("CODEX_HOME", &custom)]);
    assert!(out.status.success(), "{}", text(&out));
    let cfg = read_toml(&custom.join("config.toml"));
    assert_eq!(
        cfg["otel"]["exporter"]["otlp-grpc"]["endpoint"].as_str(),
        Some("http://127.0.0.1:5317")
    );
    assert!(!h.codex_config().exists(), "~/.codex/config.toml must not be touched");
}

#[test]
fn gemini_absent_settings_are_created_and_undo_removes_them() {
    let h = Home::new();
    let out = h.setup(&["--agent", "gemini"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Gemini CLI now sends its telemetry"), "{}", text(&out));
    let v = read_json(&h.gemini_settings());
    assert_eq!(
        v["telemetry"],
        serde_json::json!({
            "enabled": true,
            "target": "local",
            "otlpEndpoint": "http://127.0.0.1:5317",
            "otlpProtocol": "grpc",
            "logPrompts": false
        })
    );
    let undo = h.setup(&["--agent", "gemini", "--undo"], &[]);
    assert!(undo.status.success(), "{}", text(&undo));
    assert!(!h.gemini_settings().exists());
    assert!(siblings(&h.gemini_settings()).is_empty(), "{:?}", siblings(&h.gemini_settings()));
}

#[test]
fn gemini_other_keys_are_kept_and_undo_restores_the_bytes() {
    let h = Home::new();
    let original = "{\n  \"security\": {\n    \"auth\": {\n      \"selectedType\": \"gemini-api-key\"\n    }\n  },\n  \"telemetry\": {\n    \"enabled\": false,\n    \"logPrompts\": true\n  },\n  \"ui\": { \"theme\": \"GitHub\" }\n}\n";
    h.write(&h.gemini_settings(), original);
    let out = h.setup(&["--agent", "gemini", "--protocol", "http"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("http (OTLP/JSON) → http://127.0.0.1:5318"), "{}", text(&out));
    let v = read_json(&h.gemini_settings());
    assert_eq!(v["security"]["auth"]["selectedType"], "gemini-api-key");
    assert_eq!(v["ui"]["theme"], "GitHub");
    assert_eq!(v["telemetry"]["enabled"], true);
    assert_eq!(v["telemetry"]["logPrompts"], false, "prompts are never logged");
    assert_eq!(v["telemetry"]["otlpProtocol"], "http");
    assert_eq!(v["telemetry"]["otlpEndpoint"], "http://127.0.0.1:5318");
    let keys: Vec<&str> = v.as_object().expect("object").keys().map(String::as_str).collect();
    assert_eq!(keys, ["security", "telemetry", "ui"]);

    let undo = h.setup(&["--agent", "gemini", "--undo"], &[]);
    assert!(undo.status.success(), "{}", text(&undo));
    assert_eq!(std::fs::read_to_string(h.gemini_settings()).expect("read"), original);
    assert_eq!(siblings(&h.gemini_settings()), ["settings.json"]);
}

#[test]
fn gemini_invalid_json_is_refused_with_exit_1_and_nothing_written() {
    let h = Home::new();
    let broken = "{\n  \"telemetry\": {\n    \"enabled\": true,\n  }\n}\n";
    h.write(&h.gemini_settings(), broken);
    let out = h.setup(&["--agent", "gemini"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("is not valid JSON") && t.contains("nothing was written"), "{t}");
    assert_eq!(std::fs::read_to_string(h.gemini_settings()).expect("read"), broken);
    assert_eq!(siblings(&h.gemini_settings()), ["settings.json"], "no backup written");
}

#[test]
fn statusline_is_claude_codes_only() {
    let h = Home::new();
    let out = h.setup(&["--agent", "codex", "--statusline"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--statusline is Claude Code's status line"), "{}", text(&out));
    assert!(!h.codex_config().exists());
}
