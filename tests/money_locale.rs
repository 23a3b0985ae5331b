//! Issue 16's "one money format everywhere (the user's locale)": the text a person reads from
//! `report`, `budget status` and the statusline writes the same amount the same way, the way the
//! user's locale writes it (`LC_ALL` / `LC_MONETARY` / `LANG`): `$1,234.50` in en-US,
//! `1.234,50 $` in de-DE, `1 234,50 $` in fr-FR, en-US for the C locale. JSON stays a plain
//! decimal whatever the locale. (The window's side is in `tests/desktop_window.rs`.)
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Write;
use std::process::Stdio;

use support::serve::{Serve, ServeOptions};
use tokentray_core::testkit;

/// Runs `tokentray ARGS` on the engine's data dir with the locale variables set to `locale`
/// (none for `None`), `stdin` on its standard input; its stdout. `budget status` exits 1 past a
/// threshold (its documented code); anything else must succeed.
fn run(serve: &Serve, locale: Option<&str>, args: &[&str], stdin: &str) -> String {
    let mut cmd = support::serve::command(&serve.data_dir, &serve.config);
    for k in ["LC_ALL", "LC_MONETARY", "LANG", "LANGUAGE"] {
        cmd.env_remove(k);
    }
    if let Some(l) = locale {
        cmd.env("LC_ALL", l).env("LANG", l);
    }
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tokentray");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let want = if args == ["budget", "status"] { 1 } else { 0 };
    assert!(
        out.status.code() == Some(want),
        "{args:?} ({locale:?}): {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn money_is_written_the_way_the_users_locale_writes_it_in_every_text_surface() {
    let serve = Serve::start_with(ServeOptions {
        config_toml: Some("[budgets]\ndaily = 2000\n".into()),
        ..Default::default()
    });
    support::post_usage(serve.http, testkit::Usage { cost_usd: 1234.5, ..testkit::Usage::TYPICAL });
    let statusline_input = r#"{"session_id": "abc", "cost": {"total_cost_usd": 0.42}}"#;
    // (locale, today's spend, the session's cost, the daily limit) as that locale writes them.
    let cases = [
        (Some("en_US.UTF-8"), "$1,234.50", "$0.42", "$2,000.00"),
        (None, "$1,234.50", "$0.42", "$2,000.00"),
        (Some("C.UTF-8"), "$1,234.50", "$0.42", "$2,000.00"),
        (Some("de_DE.UTF-8"), "1.234,50\u{a0}$", "0,42\u{a0}$", "2.000,00\u{a0}$"),
        (Some("fr_FR.UTF-8"), "1\u{202f}234,50\u{a0}$", "0,42\u{a0}$", "2\u{202f}000,00\u{a0}$"),
    ];
    let mut report_texts = Vec::new();
    for (locale, spend, session, limit) in cases {
        // Telemetry may still be on its way on the first round: wait for the spend to show.
        let report = support::eventually(std::time::Duration::from_secs(30), || {
            let mut c = support::Checker::new();
            let text = run(&serve, locale, &["report", "today"], "");
            c.check(text.contains(spend), || format!("report ({locale:?}): want {spend}:\n{text}"));
            c
        });
        report.assert_ok("report today");
        let report = run(&serve, locale, &["report", "today"], "");
        report_texts.push(report.clone());

        let budget = run(&serve, locale, &["budget", "status"], "");
        assert!(
            budget.contains(spend) && budget.contains(limit),
            "budget status ({locale:?}): want {spend} of {limit}:\n{budget}"
        );

        let line = run(&serve, locale, &["statusline"], statusline_input);
        assert!(
            line.starts_with(&format!("{spend} today · {session} session")),
            "statusline ({locale:?}): want {spend} today · {session} session: {line}"
        );

        // Machine output keeps the plain decimal in any locale.
        let json = run(&serve, locale, &["report", "today", "--json"], "");
        let v: serde_json::Value = serde_json::from_str(&json).expect("report JSON");
        assert_eq!(v["cost_usd"], serde_json::json!(1234.5), "{locale:?}: {json}");
    }
    assert_ne!(report_texts[0], report_texts[3], "en-US and de-DE reports read the same");
}
