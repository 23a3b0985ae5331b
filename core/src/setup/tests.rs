use super::*;

fn endpoints() -> Endpoints {
    Endpoints {
        otlp_grpc: "127.0.0.1:4317".into(),
        otlp_http: "0.0.0.0:4318".into(),
        metrics: "127.0.0.1:8889".into(),
    }
}

fn env(protocol: Protocol) -> Vec<(&'static str, String)> {
    telemetry_env(&endpoints(), protocol)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("valid JSON")
}

#[test]
fn protocol_picks_its_port_and_a_wildcard_bind_becomes_loopback() {
    let grpc = env(Protocol::Grpc);
    assert!(grpc.contains(&("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317".into())));
    assert!(grpc.contains(&("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into())));
    let http = env(Protocol::HttpJson);
    assert!(http.contains(&("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318".into())));
    assert!(http.contains(&("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".into())));
}

#[test]
fn settings_path_follows_claude_config_dir() {
    let home = Path::new("/home/u");
    assert_eq!(
        settings_path(Some(home), None).expect("path"),
        PathBuf::from("/home/u/.claude/settings.json")
    );
    assert_eq!(
        settings_path(Some(home), Some(Path::new("/cfg"))).expect("path"),
        PathBuf::from("/cfg/settings.json")
    );
    assert_eq!(
        settings_path(Some(home), Some(Path::new(""))).expect("path"),
        PathBuf::from("/home/u/.claude/settings.json")
    );
    assert!(matches!(settings_path(None, None), Err(SetupError::NoHome)));
}

#[test]
fn merge_keeps_other_keys_in_their_order_and_is_idempotent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("settings.json");
    let original = "{\n  \"model\": \"opus\",\n  \"env\": {\n    \"FOO\": \"bar\",\n    \"OTEL_METRICS_EXPORTER\": \"console\"\n  },\n  \"permissions\": {\n    \"allow\": [\"Bash(ls)\"]\n  }\n}\n";
    std::fs::write(&path, original).expect("write");

    let p = plan(&path, &env(Protocol::Grpc), &[]).expect("plan");
    assert_eq!(p.before.as_deref(), Some(original));
    assert!(p.changed_keys.contains(&"OTEL_METRICS_EXPORTER".to_string()));
    let after = json(&p.after);
    assert_eq!(after["model"], "opus");
    assert_eq!(after["permissions"], json(r#"{"allow": ["Bash(ls)"]}"#));
    assert_eq!(after["env"]["FOO"], "bar");
    assert_eq!(after["env"]["OTEL_METRICS_EXPORTER"], "otlp");
    assert_eq!(after["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://127.0.0.1:4317");
    let keys: Vec<&str> = after.as_object().expect("object").keys().map(String::as_str).collect();
    assert_eq!(keys, ["model", "env", "permissions"], "key order kept");
    assert!(
        p.diff().contains("+    \"OTEL_EXPORTER_OTLP_ENDPOINT\": \"http://127.0.0.1:4317\""),
        "{}",
        p.diff()
    );

    apply(&p).expect("apply");
    assert_eq!(std::fs::read_to_string(backup_path(&path)).expect("backup"), original);
    let again = plan(&path, &env(Protocol::Grpc), &[]).expect("plan again");
    assert!(again.is_noop(), "{:?}", again.changed_keys);
    assert_eq!(again.after, p.after);

    // Switching protocol changes two keys; the backup still holds the original.
    let http = plan(&path, &env(Protocol::HttpProtobuf), &[]).expect("plan http");
    assert_eq!(http.changed_keys, ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_ENDPOINT"]);
    apply(&http).expect("apply http");
    assert_eq!(std::fs::read_to_string(backup_path(&path)).expect("backup"), original);

    assert_eq!(undo(&path).expect("undo"), Undone::Restored);
    assert_eq!(std::fs::read_to_string(&path).expect("restored"), original);
    assert!(!backup_path(&path).exists());
    assert!(matches!(undo(&path), Err(SetupError::NothingToUndo { .. })));
}

#[test]
fn a_missing_file_is_created_and_undo_removes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested").join("settings.json");
    let p = plan(&path, &env(Protocol::Grpc), &[]).expect("plan");
    assert_eq!(p.before, None);
    assert_eq!(p.changed_keys.len(), 7);
    assert!(p.diff().starts_with("--- /dev/null"), "{}", p.diff());
    apply(&p).expect("apply");
    assert_eq!(
        json(&std::fs::read_to_string(&path).expect("written"))["env"]
            ["CLAUDE_CODE_ENABLE_TELEMETRY"],
        "1"
    );
    assert_eq!(undo(&path).expect("undo"), Undone::Removed);
    assert!(!path.exists());
}

#[test]
fn invalid_json_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("settings.json");
    std::fs::write(&path, "{ \"model\": \"opus\", }").expect("write");
    let err = plan(&path, &env(Protocol::Grpc), &[]).expect_err("refused");
    assert!(matches!(err, SetupError::InvalidJson { .. }), "{err}");
    assert!(err.to_string().contains("line 1"), "{err}");
    std::fs::write(&path, "[1, 2]").expect("write");
    assert!(matches!(plan(&path, &env(Protocol::Grpc), &[]), Err(SetupError::NotAnObject { .. })));
    std::fs::write(&path, "{\"env\": \"FOO=bar\"}").expect("write");
    assert!(matches!(plan(&path, &env(Protocol::Grpc), &[]), Err(SetupError::NotAnObject { .. })));
    assert!(!backup_path(&path).exists());
}

#[test]
fn managed_settings_that_pin_another_endpoint_are_explained() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("settings.json");
    let managed = dir.path().join("managed-settings.json");
    std::fs::write(&managed, r#"{"env": {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otel.corp.example:4317", "CLAUDE_CODE_ENABLE_TELEMETRY": "1"}}"#).expect("write");
    let err =
        plan(&path, &env(Protocol::Grpc), std::slice::from_ref(&managed)).expect_err("refused");
    let text = err.to_string();
    assert!(text.contains("OTEL_EXPORTER_OTLP_ENDPOINT=https://otel.corp.example:4317"), "{text}");
    assert!(text.contains(&managed.display().to_string()), "{text}");
    // The same values as ours are no conflict.
    std::fs::write(&managed, r#"{"env": {"CLAUDE_CODE_ENABLE_TELEMETRY": "1"}}"#).expect("write");
    assert!(plan(&path, &env(Protocol::Grpc), &[managed]).is_ok());
}

#[test]
fn statusline_is_added_and_an_existing_one_is_chained() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("settings.json");
    let ours = "/usr/bin/tokentray statusline";

    let fresh = with_statusline(plan(&path, &env(Protocol::Grpc), &[]).expect("plan"), ours)
        .expect("statusline");
    assert_eq!(
        json(&fresh.after)["statusLine"],
        json(r#"{"type": "command", "command": "/usr/bin/tokentray statusline"}"#)
    );
    assert!(fresh.changed_keys.contains(&"statusLine".to_string()));

    let theirs = "echo \"it's me\" | tr a-z A-Z";
    std::fs::write(&path, serde_json::json!({ "statusLine": { "type": "command", "command": theirs }, "model": "opus" }).to_string()).expect("write");
    let chained = with_statusline(plan(&path, &env(Protocol::Grpc), &[]).expect("plan"), ours)
        .expect("statusline");
    let command =
        json(&chained.after)["statusLine"]["command"].as_str().expect("command").to_string();
    let quoted =
        command.strip_prefix("/usr/bin/tokentray statusline --after ").expect("ours first");
    // sh reads the quoted word back as exactly their command.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("printf %s {quoted}"))
        .output()
        .expect("sh");
    assert_eq!(String::from_utf8_lossy(&out.stdout), theirs);

    apply(&chained).expect("apply");
    let again = with_statusline(plan(&path, &env(Protocol::Grpc), &[]).expect("plan"), ours)
        .expect("statusline");
    assert!(again.is_noop(), "{:?}", again.changed_keys);
}
