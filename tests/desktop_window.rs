//! The dashboard window end to end over WebDriver: WebKitWebDriver launches `tokentray tray
//! --open` and drives its webview, in a headless X + D-Bus session the test starts itself.
//! Data goes in over OTLP; the window must show the right figures, update live without a
//! reload, and close to the tray without keeping WebKit alive; with telemetry off, Claude Code's
//! transcripts fill its "By project" list and mark each cost exact, priced or unpriced. Writes
//! light and dark screenshots to target/screenshots/.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support_desktop/mod.rs"]
mod support_desktop;

use std::time::Duration;

use serde_json::{json, Value};
use support_desktop::app::{self, Dirs, Listening};
use support_desktop::otlp::{self, approx, Expected};
use support_desktop::webdriver::{Driver, Session};
use support_desktop::{proc, screenshot_dir, session, wait_for, x11};
use tokentray_core::config::Config;
use tokentray_core::forward::{secret, Headers};

/// What the page shows, read in one script (ids and data attributes of ui/index.html, app.js).
const STATE: &str = r#"
const q = (s) => document.querySelector(s);
const shown = (s) => { const e = q(s); return !!e && !e.hidden; };
const val = (s) => { const e = q(s); return e && e.dataset.value !== undefined ? Number(e.dataset.value) : null; };
const bg = getComputedStyle(document.body).backgroundColor;
return {
  empty: shown('#empty-state'),
  dashboard: shown('#dashboard'),
  env: (q('#setup-env') || {}).textContent || '',
  today: val('#spend-today'), week: val('#spend-week'), month: val('#spend-month'),
  todayText: (q('#spend-today') || {}).textContent || '',
  tokens: ['input', 'output', 'cacheRead', 'cacheCreation'].map((k) => val('#tokens-' + k)),
  models: Array.from(document.querySelectorAll('[data-testid=model-row]')).map((r) => ({ model: r.dataset.model, cost: Number(r.dataset.cost), text: r.textContent })),
  budgets: Array.from(document.querySelectorAll('[data-testid=budget]')).map((b) => ({
    period: b.dataset.period, model: b.dataset.model, level: b.dataset.level,
    spent: Number(b.dataset.spent), limit: Number(b.dataset.limit), text: b.textContent,
    bar: Number((b.querySelector('rect.fill') || { getAttribute: () => NaN }).getAttribute('width')),
  })),
  budgetsShown: shown('#budgets'),
  settingsShown: shown('#budget-settings'),
  pausedNote: (q('[data-testid=alerts-paused]') || {}).textContent || null,
  activity: Array.from(document.querySelectorAll('[data-testid=activity-row]')).map((r) => ({ kind: r.dataset.kind, session: r.dataset.session, text: r.textContent })),
  plan: Array.from(document.querySelectorAll('[data-testid=plan-window]')).map((w) => ({ window: w.dataset.window, percent: Number(w.dataset.percent), text: w.textContent })),
  settingsStatus: (q('#budget-form-status') || {}).textContent || '',
  settingsInputs: ['daily', 'weekly', 'monthly'].map((p) => (q('#budget-input-' + p) || {}).value),
  budgetsText: (q('#budgets') || {}).textContent || null,
  marker: window.__tokentrayMarker === undefined ? null : window.__tokentrayMarker,
  error: shown('#error') ? q('#error').textContent : null,
  dark: window.matchMedia('(prefers-color-scheme: dark)').matches,
  background: bg,
};
"#;

fn state(s: &Session) -> Value {
    s.execute(STATE, json!([])).unwrap_or_else(|e| json!({ "script_error": e }))
}

/// Mismatches between the page and `want` (empty when it shows exactly that).
fn mismatches(v: &Value, want: &Expected) -> Vec<String> {
    let mut errs = Vec::new();
    if v["dashboard"] != json!(true) {
        errs.push("dashboard not shown".into());
    }
    for (name, got, want) in [
        ("today", &v["today"], want.today.cost),
        ("week", &v["week"], want.week.cost),
        ("month", &v["month"], want.month.cost),
    ] {
        match got.as_f64() {
            Some(g) if approx(g, want) => {}
            other => errs.push(format!("{name} spend {other:?}, want {want}")),
        }
    }
    let tokens: Vec<Option<f64>> =
        v["tokens"].as_array().map(|a| a.iter().map(Value::as_f64).collect()).unwrap_or_default();
    let want_tokens: Vec<Option<f64>> = want.today.tokens.iter().map(|t| Some(*t)).collect();
    if tokens != want_tokens {
        errs.push(format!("today's tokens {tokens:?}, want {want_tokens:?}"));
    }
    let models: Vec<(String, f64)> = v["models"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    (
                        m["model"].as_str().unwrap_or("").to_string(),
                        m["cost"].as_f64().unwrap_or(f64::NAN),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut want_models: Vec<(String, f64)> =
        want.models.iter().map(|(m, c)| (m.clone(), *c)).collect();
    want_models.sort_by(|a, b| b.1.total_cmp(&a.1));
    let same = models.len() == want_models.len()
        && models.iter().zip(&want_models).all(|(a, b)| a.0 == b.0 && approx(a.1, b.1));
    if !same {
        errs.push(format!("model rows {models:?}, want {want_models:?} (most expensive first)"));
    }
    if !v["error"].is_null() {
        errs.push(format!("error shown: {}", v["error"]));
    }
    errs.extend(budget_mismatches(v, want));
    errs
}

/// The budgets of [`CONFIG`]: a bar each, with today's and this month's spend against the limit.
fn budget_mismatches(v: &Value, want: &Expected) -> Vec<String> {
    let mut errs = Vec::new();
    if v["budgetsShown"] != json!(true) {
        errs.push("budget section not shown".into());
    }
    if v["budgetsText"].as_str().is_none_or(|t| t.contains("null") || t.contains("undefined")) {
        errs.push(format!("budget section text {}", v["budgetsText"]));
    }
    let bars = v["budgets"].as_array().cloned().unwrap_or_default();
    for (period, limit, spent) in
        [("daily", DAILY_LIMIT, want.today.cost), ("monthly", MONTHLY_LIMIT, want.month.cost)]
    {
        let Some(b) = bars.iter().find(|b| b["period"] == json!(period) && b["model"] == json!(""))
        else {
            errs.push(format!("no {period} budget bar in {bars:?}"));
            continue;
        };
        let level = if spent >= limit {
            "over"
        } else if spent / limit >= 0.5 {
            "warn"
        } else {
            "ok"
        };
        let text = b["text"].as_str().unwrap_or("");
        let bar = (spent / limit).min(1.0) * 100.0;
        if !(b["spent"].as_f64().is_some_and(|g| approx(g, spent))
            && b["limit"].as_f64() == Some(limit)
            && b["level"] == json!(level)
            && b["bar"].as_f64().is_some_and(|w| (w - bar).abs() < 1e-6)
            && text.contains(&format!("{} of ${limit:.2}", otlp::usd(spent))))
        {
            errs.push(format!(
                "{period} budget bar {b}, want ${spent} of ${limit} ({level}, bar {bar:.1}%)"
            ));
        }
    }
    errs
}

const DAILY_LIMIT: f64 = 2.0;
const MONTHLY_LIMIT: f64 = 50.0;
/// Budgets the window shows as bars: today's history spend is past 80 % of the daily one; the
/// live point takes it to the limit.
const CONFIG: &str = "[budgets]\ndaily = 2\nmonthly = 50\n";

fn wait_until(
    s: &Session,
    what: &str,
    timeout: Duration,
    check: impl Fn(&Value) -> Vec<String>,
) -> Value {
    let mut last = (Value::Null, Vec::new());
    let ok = wait_for(timeout, || {
        let v = state(s);
        let errs = check(&v);
        if errs.is_empty() {
            Some(v)
        } else {
            last = (v, errs);
            None
        }
    });
    ok.unwrap_or_else(|| panic!("{what}: {}\npage: {:#}", last.1.join("; "), last.0))
}

fn save(s: &Session, name: &str) {
    // The DOM is in the expected state; give WebKit a moment to paint it.
    std::thread::sleep(Duration::from_millis(800));
    let png = s.screenshot();
    assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
    let path = screenshot_dir().join(name);
    std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    println!("screenshot: {}", path.display());
}

/// Clicks the Settings tab and waits until its view is the one shown.
fn show_settings(s: &Session) {
    let tab = s.find("[data-testid=tab-settings]").unwrap_or_else(|e| panic!("{e}"));
    s.click(&tab).unwrap_or_else(|e| panic!("click the Settings tab: {e}"));
    let shown = wait_for(Duration::from_secs(10), || {
        s.execute(
            "const v = document.querySelector('#settings'); return !!v && !v.hidden && document.querySelector('#dashboard').hidden;",
            json!([]),
        )
        .ok()
        .filter(|v| *v == json!(true))
    });
    assert!(shown.is_some(), "the Settings view did not open");
}

/// Luminance (0–1) of a CSS `rgb(r, g, b)` colour.
fn luminance(css: &str) -> Option<f64> {
    let inner = css.split_once('(')?.1.trim_end_matches(')');
    let c: Vec<f64> = inner.split(',').take(3).filter_map(|p| p.trim().parse().ok()).collect();
    (c.len() == 3).then(|| (0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]) / 255.0)
}

fn window_flow(theme: &str) {
    let dark = theme == "dark";
    let env: Vec<(&str, &str)> =
        if dark { vec![("GTK_THEME", "Adwaita:dark")] } else { vec![("GTK_THEME", "Adwaita")] };
    let driver = Driver::start(&env);
    let dirs = Dirs::new();
    std::fs::write(&dirs.config, CONFIG).expect("write config");
    let s = driver.session(&app::bin(), &dirs.args(&["--open"]));
    let ports: Listening = driver
        .out
        .wait_listening(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no listening line:\n{}", driver.out.text()));

    // Empty data dir: the setup instructions, pointing at the ports actually bound.
    let grpc = format!("OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:{}", ports.grpc.port());
    let http = format!("http://127.0.0.1:{}", ports.http.port());
    let v = wait_until(&s, "empty state", Duration::from_secs(20), |v| {
        let env = v["env"].as_str().unwrap_or("");
        let mut e = Vec::new();
        if v["empty"] != json!(true) || v["dashboard"] != json!(false) {
            e.push("empty state not shown".to_string());
        }
        if !env.contains(&grpc) || !env.contains(&http) {
            e.push(format!("env block does not name the bound ports {grpc} / {http}"));
        }
        e
    });
    assert_eq!(v["dark"], json!(dark), "prefers-color-scheme under GTK_THEME for {theme}");
    let lum = v["background"]
        .as_str()
        .and_then(luminance)
        .unwrap_or_else(|| panic!("background {}", v["background"]));
    assert!(
        if dark { lum < 0.3 } else { lum > 0.7 },
        "{theme} background {} (luminance {lum:.2})",
        v["background"]
    );
    save(&s, &format!("window-{theme}-empty.png"));

    // History arrives over OTLP while the window is open.
    let mut points = otlp::history();
    s.execute("window.__tokentrayMarker = 42; return true;", json!([])).expect("set marker");
    otlp::send(ports.http, &points);
    let want = otlp::expected(&points);
    let v =
        wait_until(&s, "figures after ingest", Duration::from_secs(10), |v| mismatches(v, &want));
    assert!(
        v["todayText"].as_str().unwrap_or("").contains(&format!("{:.2}", want.today.cost)),
        "today shown as {}",
        v["todayText"]
    );
    save(&s, &format!("window-{theme}-data.png"));

    // More data: shown without a reload (the page's own state survives).
    let live = otlp::live_point();
    otlp::send(ports.http, std::slice::from_ref(&live));
    points.push(live);
    let want = otlp::expected(&points);
    let v = wait_until(&s, "live update", Duration::from_secs(10), |v| mismatches(v, &want));
    assert_eq!(v["marker"], json!(42), "the page was reloaded");

    // Close: the app stays in the tray with its engine, and WebKit's processes are gone.
    let app_pid =
        driver.app_pid().unwrap_or_else(|| panic!("app process not found under the driver"));
    // The window process (`tokentray-window`) and WebKit's helpers under it.
    let webkit = || {
        proc::descendants(app_pid)
            .into_iter()
            .filter(|(_, n)| n.starts_with("WebKit") || n.starts_with("tokentray"))
            .count()
    };
    let open_rss = proc::tree_rss_kib(app_pid);
    assert!(webkit() > 0, "no WebKit process while the window is open");
    assert_eq!(x11::close("tokentray", 300), 1, "one dashboard window to close");
    assert!(
        driver.out.wait_for("window closed", Duration::from_secs(10)),
        "window not closed:\n{}",
        driver.out.text()
    );
    let gone = wait_for(Duration::from_secs(15), || (webkit() == 0).then_some(()));
    std::thread::sleep(Duration::from_secs(3));
    let closed_rss = proc::tree_rss_kib(app_pid);
    println!("{theme}: process tree RSS with the window open {} MiB, after closing it {} MiB (debug build)", open_rss / 1024, closed_rss / 1024);
    assert!(
        gone.is_some(),
        "window processes still running after close: {:?}",
        proc::descendants(app_pid)
    );
    assert!(proc::alive(app_pid), "the app exited when its window closed:\n{}", driver.out.text());
    assert!(app::metrics_ok(ports.metrics), "the engine stopped when the window closed");
    s.end();
}

#[test]
fn window_shows_history_live_light() {
    if session::enter("window_shows_history_live_light", &["WebKitWebDriver"]) {
        window_flow("light");
    }
}

#[test]
fn window_shows_history_live_dark() {
    if session::enter("window_shows_history_live_dark", &["WebKitWebDriver"]) {
        window_flow("dark");
    }
}

/// The empty state's one button sets Claude Code up: `~/.claude/settings.json` (of the session's
/// temporary HOME) then points at the ports this engine bound, and the window says so.
#[test]
fn empty_state_sets_up_claude_code_with_one_click() {
    if !session::enter("empty_state_sets_up_claude_code_with_one_click", &["WebKitWebDriver"]) {
        return;
    }
    let home = std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME"));
    let settings = home.join(".claude/settings.json");
    std::fs::create_dir_all(home.join(".claude")).expect("mkdir");
    std::fs::write(&settings, "{\n  \"theme\": \"dark\"\n}\n").expect("write settings");
    let driver = Driver::start(&[
        ("GTK_THEME", "Adwaita"),
        ("TOKENTRAY_CLAUDE_MANAGED_SETTINGS", "/nonexistent/managed-settings.json"),
    ]);
    let dirs = Dirs::new();
    let s = driver.session(&app::bin(), &dirs.args(&["--open"]));
    let ports = driver
        .out
        .wait_listening(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no listening line:\n{}", driver.out.text()));
    wait_until(&s, "empty state", Duration::from_secs(20), |v| {
        if v["empty"] == json!(true) {
            Vec::new()
        } else {
            vec!["empty state not shown".into()]
        }
    });

    let button = s.find("[data-testid=setup-claude]").unwrap_or_else(|e| panic!("{e}"));
    s.click(&button).expect("click Set up Claude Code");
    let result = wait_for(Duration::from_secs(10), || {
        let t = s
            .execute(
                "return document.querySelector('[data-testid=setup-result]').textContent;",
                json!([]),
            )
            .ok()?;
        t.as_str().filter(|t| !t.is_empty()).map(str::to_string)
    })
    .unwrap_or_else(|| panic!("no result shown:\n{}", driver.out.text()));
    let endpoint = format!("http://127.0.0.1:{}", ports.grpc.port());
    assert!(
        result.contains("Claude Code now sends its telemetry to tokentray")
            && result.contains(&endpoint),
        "{result}"
    );
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(&settings).expect("read settings"))
            .expect("JSON");
    assert_eq!(v["theme"], "dark", "other keys kept: {v:#}");
    assert_eq!(v["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"], endpoint.as_str(), "{v:#}");
    assert_eq!(v["env"]["CLAUDE_CODE_ENABLE_TELEMETRY"], "1", "{v:#}");
    s.end();
}

/// The Activity list shows recent events in words, and its two filters (type, session) narrow
/// it, driven with real clicks on the selects' options.
#[test]
fn activity_lists_events_and_filters_by_type_and_session() {
    if !session::enter(
        "activity_lists_events_and_filters_by_type_and_session",
        &["WebKitWebDriver"],
    ) {
        return;
    }
    let driver = Driver::start(&[("GTK_THEME", "Adwaita")]);
    let dirs = Dirs::new();
    let s = driver.session(&app::bin(), &dirs.args(&["--open"]));
    let ports = driver
        .out
        .wait_listening(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no listening line:\n{}", driver.out.text()));
    let points = otlp::history();
    otlp::send(ports.http, &points);
    let (a, b) = (points[0].session.clone(), points[1].session.clone());
    let t = otlp::now_ns();
    otlp::send_events(
        ports.http,
        vec![
            tokentray_core::testkit::event_record(
                &a,
                "tool_decision",
                &[("tool_name", "Bash"), ("decision", "accept"), ("source", "config")],
                t,
            ),
            tokentray_core::testkit::event_record(
                &a,
                "tool_result",
                &[("tool_name", "Bash"), ("success", "true"), ("duration_ms", "340")],
                t + 1_000_000,
            ),
            tokentray_core::testkit::event_record(
                &b,
                "api_error",
                &[("error", "Overloaded"), ("status_code", "529")],
                t + 2_000_000,
            ),
        ],
    );
    let rows = |v: &Value| -> Vec<(String, String, String)> {
        v["activity"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| {
                        (
                            r["kind"].as_str().unwrap_or("").to_string(),
                            r["session"].as_str().unwrap_or("").to_string(),
                            r["text"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let v = wait_until(&s, "all events listed", Duration::from_secs(20), |v| {
        let r = rows(v);
        if r.len() == points.len() + 3 {
            Vec::new()
        } else {
            vec![format!("{} rows: {r:?}", r.len())]
        }
    });
    let all = rows(&v);
    assert_eq!(all[0].0, "api_error", "newest first: {all:?}");
    assert!(all[0].2.contains("Overloaded (529)"), "{all:?}");
    assert!(all.iter().any(|r| r.0 == "tool_result" && r.2.contains("Bash succeeded")), "{all:?}");
    assert_eq!(all.iter().filter(|r| r.0 == "api_request").count(), points.len(), "{all:?}");

    let pick = |css: &str| {
        s.click(&s.find(css).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("click {css}: {e}"))
    };
    pick("#activity-kind");
    pick("#activity-kind option[value=tool_result]");
    wait_until(&s, "only tool results", Duration::from_secs(10), |v| {
        let r = rows(v);
        if r.len() == 1 && r[0].0 == "tool_result" {
            Vec::new()
        } else {
            vec![format!("rows {r:?}")]
        }
    });
    pick("#activity-kind option[value='']");
    pick(&format!("#activity-session option[value='{a}']"));
    wait_until(&s, "only session A", Duration::from_secs(10), |v| {
        let r = rows(v);
        let kinds: Vec<&str> = r.iter().map(|x| x.0.as_str()).collect();
        if r.iter().all(|x| x.1 == a) && kinds == ["tool_result", "tool_decision", "api_request"] {
            Vec::new()
        } else {
            vec![format!("rows {r:?}")]
        }
    });
    s.execute(
        "document.querySelector('[data-testid=activity]').scrollIntoView(); return true;",
        json!([]),
    )
    .expect("scroll");
    save(&s, "window-light-activity.png");
    s.end();
}

/// Budgets set in the window's settings land in the config file (as `tokentray budget set`
/// writes it) and show as bars at once; emptying a field removes that budget.
#[test]
fn window_settings_set_and_clear_budgets() {
    if !session::enter("window_settings_set_and_clear_budgets", &["WebKitWebDriver"]) {
        return;
    }
    let driver = Driver::start(&[("GTK_THEME", "Adwaita")]);
    let dirs = Dirs::new();
    assert!(!dirs.config.exists());
    let s = driver.session(&app::bin(), &dirs.args(&["--open"]));
    let ports = driver
        .out
        .wait_listening(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no listening line:\n{}", driver.out.text()));
    let points = otlp::history();
    otlp::send(ports.http, &points);
    let want = otlp::expected(&points);

    // No budget yet: no bars; the settings are there with empty fields.
    wait_until(&s, "settings without budgets", Duration::from_secs(20), |v| {
        let mut e = Vec::new();
        if v["settingsShown"] != json!(true) {
            e.push("budget settings not shown".to_string());
        }
        if v["budgetsShown"] != json!(false)
            || v["budgets"].as_array().is_none_or(|b| !b.is_empty())
        {
            e.push(format!("budget bars without a budget: {}", v["budgets"]));
        }
        if v["settingsInputs"] != json!(["", "", ""]) {
            e.push(format!("fields {}", v["settingsInputs"]));
        }
        if !v["today"].as_f64().is_some_and(|t| approx(t, want.today.cost)) {
            e.push("data not shown yet".into());
        }
        e
    });

    // Usage comes first: the settings are in their own view, one click away.
    show_settings(&s);

    // No `[forward]` either: the forwarding section says how to set it up, and offers no switch.
    let section = || s.execute(FORWARD, json!([])).expect("read the forwarding section");
    let shown = wait_for(Duration::from_secs(10), || {
        Some(section())
            .filter(|v| v["shown"] == json!(true) && v["state"] == json!("not configured"))
    });
    assert!(shown.is_some_and(|v| v["setupShown"] == json!(true)), "{:#}", section());
    // The instruction is given once, not repeated by the explanation under it.
    let setup = s
        .execute("return document.querySelector('[data-testid=forward]').innerText;", json!([]))
        .expect("section text");
    let text = setup.as_str().unwrap_or("");
    assert_eq!(
        text.matches("tokentray forward setup --endpoint URL --protocol grpc").count(),
        1,
        "{text}"
    );
    assert_eq!(
        s.execute("return document.querySelector('#forward-controls').hidden;", json!([]))
            .expect("controls"),
        json!(true)
    );

    let field = |period: &str| {
        s.find(&format!("[data-testid=budget-input-{period}]")).unwrap_or_else(|e| panic!("{e}"))
    };
    let click_save = || {
        s.click(&s.find("[data-testid=budget-save]").unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("click Save: {e}"))
    };
    let (daily, monthly) = (field("daily"), field("monthly"));
    s.type_text(&daily, "2").expect("type daily");
    s.type_text(&monthly, "50").expect("type monthly");
    click_save();
    wait_until(&s, "bars after saving", Duration::from_secs(10), |v| {
        let mut e = budget_mismatches(v, &want);
        if v["settingsStatus"] != json!("Saved.") {
            e.push(format!("status {}", v["settingsStatus"]));
        }
        e
    });
    let budgets =
        Config::from_file(&dirs.config).expect("the config file the window wrote").budgets;
    assert_eq!(
        budgets.daily.as_ref().map(|b| (b.limit_usd, b.thresholds.clone())),
        Some((2.0, vec![50, 80, 100]))
    );
    assert_eq!(budgets.monthly.as_ref().map(|b| b.limit_usd), Some(50.0));
    assert!(budgets.weekly.is_none());
    save(&s, "window-light-budgets.png");

    // Emptying the daily field removes the daily budget (file and bar); the monthly one stays.
    s.clear(&daily).expect("clear daily");
    click_save();
    wait_until(&s, "daily budget removed", Duration::from_secs(10), |v| {
        let periods: Vec<&str> = v["budgets"]
            .as_array()
            .map(|b| b.iter().filter_map(|x| x["period"].as_str()).collect())
            .unwrap_or_default();
        if periods == ["monthly"] && v["settingsInputs"] == json!(["", "", "50"]) {
            Vec::new()
        } else {
            vec![format!("bars {periods:?}, fields {}", v["settingsInputs"])]
        }
    });
    let budgets = Config::from_file(&dirs.config).expect("config").budgets;
    assert!(budgets.daily.is_none() && budgets.monthly.is_some(), "{budgets:?}");

    // Alerts paused (here from the CLI; the tray's checkbox writes the same state): the window
    // says so with its next refresh.
    let out = app::command()
        .args([
            "--data-dir",
            &dirs.data_dir.display().to_string(),
            "--config",
            &dirs.config.display().to_string(),
            "budget",
            "pause",
        ])
        .output()
        .expect("run budget pause");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    otlp::send(ports.http, &[otlp::live_point()]);
    wait_until(&s, "paused alerts shown", Duration::from_secs(10), |v| {
        if v["pausedNote"].as_str().is_some_and(|t| t.contains("alerts paused until")) {
            Vec::new()
        } else {
            vec![format!("pause note {}", v["pausedNote"])]
        }
    });

    // Plan usage handed over by the statusline command shows in the window.
    // 80% of the 5-hour window two hours after it began: at that pace it is full in 30 minutes,
    // before its reset in three hours.
    let now = chrono::Local::now();
    let resets = now.timestamp() + 3 * 3600 + 30;
    // The window began 1 h 59 m 30 s before `now`; at the statusline's own clock `t` it is full
    // at t + (t - began) / 4 (20 % more at 80 % so far). `t` lies between `now` and the moment
    // the command returns, so any minute in that span is right: a fixed guess of `t` fails when
    // a minute turns over while the command runs.
    let began = now.timestamp() - 7170;
    // Seconds since the epoch at which the window is full, for a statusline clock of `t` seconds.
    let full_at = move |t: i64| t + (t - began) / 4;
    let input = format!(
        r#"{{"rate_limits": {{"five_hour": {{"used_percentage": 80, "resets_at": {resets}}}, "seven_day": {{"used_percentage": 12.5}}}}}}"#
    );
    let mut child = app::command()
        .args([
            "--data-dir",
            &dirs.data_dir.display().to_string(),
            "--config",
            &dirs.config.display().to_string(),
            "statusline",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run statusline");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), input.as_bytes())
        .expect("stdin");
    let line = child.wait_with_output().expect("statusline");
    let returned = chrono::Local::now();
    let line = String::from_utf8_lossy(&line.stdout).into_owned();
    // Every local `HH:MM` the window could be full at, for a clock read between `now` and `until`.
    let full_minutes = move |until: chrono::DateTime<chrono::Local>| -> Vec<String> {
        let (earliest, latest) = (full_at(now.timestamp()), full_at(until.timestamp() + 1));
        (earliest.div_euclid(60)..=latest.div_euclid(60))
            .filter_map(|minute| {
                chrono::TimeZone::timestamp_opt(&chrono::Local, minute * 60, 0).single()
            })
            .map(|m| m.format("%H:%M").to_string())
            .collect()
    };
    let minutes = full_minutes(returned);
    assert!(
        minutes.iter().any(|clock| {
            line.contains(&format!("5h 80% (resets in 3 h 00 m, 100% at {clock}) · 7d 12%"))
        }),
        "{line} (expected full at one of {minutes:?})"
    );
    otlp::send(ports.http, &[otlp::live_point()]);
    wait_until(&s, "plan usage shown", Duration::from_secs(10), |v| {
        let plan: Vec<(String, f64)> = v["plan"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|w| {
                        (
                            w["window"].as_str().unwrap_or("").to_string(),
                            w["percent"].as_f64().unwrap_or(f64::NAN),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let five_hour_text = v["plan"][0]["text"].as_str().unwrap_or_default().to_string();
        if plan == [("five_hour".to_string(), 80.0), ("seven_day".to_string(), 12.5)]
            && five_hour_text.contains("resets in ")
            && full_minutes(chrono::Local::now())
                .iter()
                .any(|clock| five_hour_text.contains(&format!("100% at {clock}")))
        {
            Vec::new()
        } else {
            vec![format!("plan windows {plan:?}, 5-hour window says {five_hour_text:?}")]
        }
    });
    save(&s, "window-light-plan.png");

    // Nonsense is refused in words, and nothing is written.
    let before = std::fs::read_to_string(&dirs.config).expect("read config");
    s.type_text(&daily, "-3").expect("type");
    click_save();
    wait_until(&s, "refusal", Duration::from_secs(5), |v| {
        if v["settingsStatus"].as_str().is_some_and(|t| t.contains("must be a positive amount")) {
            Vec::new()
        } else {
            vec![format!("status {}", v["settingsStatus"])]
        }
    });
    assert_eq!(std::fs::read_to_string(&dirs.config).expect("read config"), before);
    s.end();
}

/// The "Forward to team" section, read in one script.
const FORWARD: &str = r#"
const q = (s) => document.querySelector(s);
const section = q('[data-testid=forward]');
return {
  shown: !!section && !section.hidden,
  state: section ? section.dataset.state || null : null,
  summary: (q('[data-testid=forward-summary]') || {}).textContent || '',
  setupShown: !!q('[data-testid=forward-setup]') && !q('[data-testid=forward-setup]').hidden,
  toggle: (q('[data-testid=forward-toggle]') || {}).checked,
  facts: Object.fromEntries(Array.from(document.querySelectorAll('#forward-facts dd')).map((d) => [d.dataset.fact, d.textContent])),
  headers: (q('[data-testid=forward-headers]') || {}).textContent || '',
  note: (q('[data-testid=forward-form-status]') || {}).textContent || '',
  inputType: (q('[data-testid=forward-headers-input]') || {}).type || null,
  inputValue: (q('[data-testid=forward-headers-input]') || {}).value,
  // Anywhere in what the page holds: markup, rendered text, every field's value.
  holdsSecret: (document.documentElement.outerHTML + document.body.innerText + Array.from(document.querySelectorAll('input')).map((i) => i.value).join('\n')).includes('s3cr3t'),
};
"#;

/// "Forward to team" in the window: the status in words, headers typed into a password field go
/// to the OS keychain (another process reads them back) and nowhere else (page, config file,
/// command lines, logs), and the switch turns forwarding on and off in the database.
#[test]
fn window_forward_section_keeps_headers_in_the_keychain_and_switches() {
    if !session::enter(
        "window_forward_section_keeps_headers_in_the_keychain_and_switches",
        &["WebKitWebDriver", "gnome-keyring-daemon"],
    ) {
        return;
    }
    session::unlock_keyring();
    let driver = Driver::start(&[("GTK_THEME", "Adwaita")]);
    let dirs = Dirs::new();
    dirs.write_forward_config();
    let endpoint =
        Config::from_file(&dirs.config).expect("config").forward.endpoint.expect("endpoint");
    let s = driver.session(&app::bin(), &dirs.args(&["--open"]));
    let ports = driver
        .out
        .wait_listening(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no listening line:\n{}", driver.out.text()));
    otlp::send(ports.http, &otlp::history());
    show_settings(&s);
    let forward = || s.execute(FORWARD, json!([])).unwrap_or_else(|e| json!({ "script_error": e }));
    let until = |what: &str, check: &dyn Fn(&Value) -> Option<String>| {
        let mut last = (Value::Null, String::new());
        wait_for(Duration::from_secs(15), || {
            let v = forward();
            match check(&v) {
                None => Some(v),
                Some(why) => {
                    last = (v, why);
                    None
                }
            }
        })
        .unwrap_or_else(|| {
            panic!("{what}: {}\nsection: {:#}\n{}", last.1, last.0, driver.out.text())
        })
    };

    // Set up, off, no headers yet: said in words.
    until("section off", &|v| {
        let ok = v["shown"] == json!(true)
            && v["state"] == json!("off")
            && v["summary"] == json!(format!("Forwarding to {endpoint} is off."))
            && v["setupShown"] == json!(false)
            && v["toggle"] == json!(false)
            && v["facts"]["Endpoint"] == json!(endpoint)
            && v["facts"]["Protocol"] == json!("http/protobuf")
            && v["facts"]["Last success"] == json!("never")
            && v["headers"] == json!("No headers stored.");
        (!ok).then(|| "not the initial state".to_string())
    });
    assert_eq!(forward()["inputType"], json!("password"));

    // Headers typed and saved: only the name and length come back.
    let value = "Bearer s3cr3t-token";
    let masked = format!("Authorization=****** ({} characters)", value.chars().count());
    let input = s.find("[data-testid=forward-headers-input]").unwrap_or_else(|e| panic!("{e}"));
    let click_save = || {
        s.click(&s.find("[data-testid=forward-headers-save]").unwrap_or_else(|e| panic!("{e}")))
            .expect("click Save headers")
    };
    // Without a name: refused in words that do not repeat the value.
    s.type_text(&input, value).expect("type headers");
    click_save();
    let v = until("refusal", &|v| {
        (v["note"] != json!("Could not save the headers: invalid headers: item 1 has no '=' (expected name=value)")).then(|| "no refusal".to_string())
    });
    assert!(
        !v["note"].as_str().unwrap_or("").contains("s3cr3t")
            && !v["headers"].as_str().unwrap_or("").contains("s3cr3t"),
        "{v:#}"
    );
    assert_eq!(
        secret::load(secret::FORWARD_HEADERS).expect("read the keychain"),
        None,
        "a refused text was stored"
    );
    s.clear(&input).expect("clear");
    s.type_text(&input, &format!("Authorization={value}")).expect("type headers");
    click_save();
    let v = until("headers saved", &|v| {
        let ok = v["note"] == json!(format!("Saved: {masked}"))
            && v["headers"] == json!(format!("Stored in the keychain: {masked}"))
            && v["inputValue"] == json!("");
        (!ok).then(|| "not saved and shown masked".to_string())
    });
    assert_eq!(v["holdsSecret"], json!(false), "the page still holds the secret");

    // In the keychain, read back by another process (this test), entry by entry.
    let stored = secret::load(secret::FORWARD_HEADERS)
        .expect("read the keychain")
        .expect("a forward-headers entry");
    let headers = Headers::parse(&stored).expect("stored headers parse");
    assert_eq!(headers.iter().collect::<Vec<_>>(), [("Authorization", value)]);
    // And nowhere else: config file, command lines of the app's processes, their logs.
    assert!(
        !std::fs::read_to_string(&dirs.config).expect("read config").contains("s3cr3t"),
        "the secret reached the config file"
    );
    let app_pid =
        driver.app_pid().unwrap_or_else(|| panic!("app process not found under the driver"));
    let pids: Vec<u32> = std::iter::once(app_pid)
        .chain(proc::descendants(app_pid).into_iter().map(|(p, _)| p))
        .collect();
    assert!(pids.len() >= 2, "no window process under the app: {:?}", proc::descendants(app_pid));
    for pid in pids {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&cmdline).contains("s3cr3t"),
            "the secret is on the command line of {pid}"
        );
    }
    assert!(!driver.out.contains("s3cr3t"), "the secret reached the logs:\n{}", driver.out.text());

    // The switch: on in the database; the tray's forwarder then tries the collector with what
    // arrives next, and the section says why it could not deliver.
    let toggle = s.find("[data-testid=forward-toggle]").unwrap_or_else(|e| panic!("{e}"));
    s.click(&toggle).expect("click the switch");
    assert!(
        wait_for(Duration::from_secs(5), || dirs.forward_enabled().then_some(())).is_some(),
        "forward.enabled not set:\n{}",
        driver.out.text()
    );
    // What arrives is queued from the switch's commit on; the tray's forwarder starts sending
    // once it has seen the switch made in the window's process (it looks every 10 s when idle).
    assert!(
        driver.out.wait_for("forwarding switched on=true", Duration::from_secs(20)),
        "the tray's forwarder did not follow:\n{}",
        driver.out.text()
    );
    otlp::send(ports.http, &[otlp::live_point()]);
    let v = until("retrying shown", &|v| {
        let ok = v["toggle"] == json!(true)
            && v["state"] == json!("retrying")
            && v["summary"].as_str().is_some_and(|t| t.starts_with("Retrying: "))
            && v["facts"]["Last error"].is_string();
        (!ok).then(|| "not retrying".to_string())
    });
    assert!(v["facts"]["Waiting"].as_str().is_some_and(|w| w != "nothing"), "{v:#}");
    s.execute(
        "document.querySelector('[data-testid=forward]').scrollIntoView(); return true;",
        json!([]),
    )
    .expect("scroll");
    save(&s, "window-light-forward.png");
    s.click(&toggle).expect("click the switch again");
    assert!(
        wait_for(Duration::from_secs(5), || (!dirs.forward_enabled()).then_some(())).is_some(),
        "forward.enabled still set"
    );
    until("section off again", &|v| {
        (v["toggle"] != json!(false) || v["state"] != json!("off")).then(|| "still on".to_string())
    });
    assert!(!driver.out.contains("s3cr3t"), "the secret reached the logs:\n{}", driver.out.text());
    s.end();
}

/// Numbers for BENCHMARKS.md (desktop section), not a pass/fail test:
/// `cargo test --release --features custom-protocol --test desktop_window -- --ignored --nocapture measure_footprint`
/// Cold start to tray visible (item registered on the bus), memory of the whole process tree
/// idle / window open / after closing it, and CPU over 60 s idle.
#[test]
#[ignore = "measurement for BENCHMARKS.md (desktop section)"]
fn measure_footprint() {
    if !session::enter_with_timeout(
        "measure_footprint",
        &["WebKitWebDriver"],
        Duration::from_secs(300),
    ) {
        return;
    }
    use support_desktop::app::App;
    use support_desktop::sni::Watcher;
    let mib = |kib: u64| kib as f64 / 1024.0;
    let watcher = Watcher::start();

    // Cold start: process spawn to the StatusNotifierItem registered (what a panel needs).
    let mut starts = Vec::new();
    let mut idle_rss = 0;
    for run in 0..3 {
        let dirs = Dirs::new();
        let t0 = std::time::Instant::now();
        let mut tray = App::spawn(&dirs.args(&[]));
        let item = watcher.wait_item(run, Duration::from_secs(30)).expect("tray item");
        starts.push(t0.elapsed().as_secs_f64() * 1000.0);
        if run == 2 {
            std::thread::sleep(Duration::from_secs(5));
            idle_rss = proc::tree_rss_kib(tray.pid);
            println!(
                "MEASURE idle tray process: Pss {:.1} MiB, of which anonymous {:.1} MiB (the rest is mapped code and data of the linked libraries)",
                mib(proc::rollup_kib(tray.pid, "Pss").unwrap_or(0)),
                mib(proc::rollup_kib(tray.pid, "Anonymous").unwrap_or(0))
            );
        }
        if run == 2 {
            // "Open dashboard" to the window's webview created (its process started from scratch).
            let open = item.menu().find("Open dashboard").expect("Open dashboard").id;
            let t1 = std::time::Instant::now();
            item.click(open);
            assert!(tray.out.wait_for("window opened", Duration::from_secs(20)));
            println!(
                "MEASURE Open dashboard to window created: {:.0} ms",
                t1.elapsed().as_secs_f64() * 1000.0
            );
            assert_eq!(x11::close("tokentray", 300), 1);
            assert!(tray.out.wait_for("window closed", Duration::from_secs(10)));
        }
        let quit = item.menu().find("Quit").expect("Quit").id;
        item.click(quit);
        assert_eq!(tray.wait_exit(Duration::from_secs(20)).and_then(|s| s.code()), Some(0));
    }
    println!(
        "MEASURE cold start to tray item registered: {:?} ms",
        starts.iter().map(|s| s.round()).collect::<Vec<_>>()
    );
    println!("MEASURE idle, window never opened: process tree RSS {:.1} MiB", mib(idle_rss));

    // Window open with data, then closed.
    let driver = Driver::start(&[]);
    let dirs = Dirs::new();
    std::fs::write(&dirs.config, CONFIG).expect("write config");
    let s = driver.session(&app::bin(), &dirs.args(&["--open"]));
    let ports = driver.out.wait_listening(Duration::from_secs(30)).expect("listening");
    let points = otlp::history();
    otlp::send(ports.http, &points);
    let want = otlp::expected(&points);
    wait_until(&s, "figures", Duration::from_secs(10), |v| mismatches(v, &want));
    std::thread::sleep(Duration::from_secs(3));
    let pid = driver.app_pid().expect("app pid");
    let tree = |pid: u32| {
        let mut parts = vec![format!("tokentray {:.1}", mib(proc::rss_kib(pid).unwrap_or(0)))];
        parts.extend(
            proc::descendants(pid)
                .into_iter()
                .map(|(p, n)| format!("{n} {:.1}", mib(proc::rss_kib(p).unwrap_or(0)))),
        );
        parts.join(" + ")
    };
    println!(
        "MEASURE window open: process tree RSS {:.1} MiB ({})",
        mib(proc::tree_rss_kib(pid)),
        tree(pid)
    );
    assert_eq!(x11::close("tokentray", 300), 1, "one dashboard window to close");
    assert!(driver.out.wait_for("window closed", Duration::from_secs(10)));
    std::thread::sleep(Duration::from_secs(5));
    println!(
        "MEASURE window closed (5 s later): process tree RSS {:.1} MiB ({})",
        mib(proc::tree_rss_kib(pid)),
        tree(pid)
    );

    // Idle CPU over 60 s with the window closed.
    let ticks_per_s = 100.0; // USER_HZ on Linux
    let c0 = proc::tree_cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(60));
    let c1 = proc::tree_cpu_ticks(pid);
    println!(
        "MEASURE idle 60 s, window closed: {:.2} s CPU ({:.2}% of one core)",
        (c1 - c0) as f64 / ticks_per_s,
        (c1 - c0) as f64 / ticks_per_s / 60.0 * 100.0
    );
    println!(
        "MEASURE after the idle minute: process tree RSS {:.1} MiB",
        mib(proc::tree_rss_kib(pid))
    );
    s.end();
}

/// One `assistant` line of Claude Code's transcript (the CLI's shape, reduced to what counts).
fn transcript_assistant(
    session: &str,
    req: &str,
    cwd: &std::path::Path,
    model: &str,
    input: u64,
    output: u64,
) -> String {
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let line = json!({
        "parentUuid": null, "isSidechain": false, "type": "assistant", "sessionId": session,
        "requestId": format!("req_{req}"), "uuid": format!("u-{req}"), "timestamp": time,
        "cwd": cwd.display().to_string(), "gitBranch": "main", "version": "2.1.330",
        "message": {
            "id": format!("msg_{req}"), "type": "message", "role": "assistant", "model": model,
            "content": [{ "type": "text", "text": "ok" }], "stop_reason": "end_turn",
            "usage": { "input_tokens": input, "output_tokens": output,
                       "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0 },
        },
    });
    format!("{line}\n")
}

/// Claude Code's own cost of a session so far (a `cost-state` line).
fn transcript_cost_state(session: &str, model: &str, cost: f64) -> String {
    let line = json!({
        "type": "cost-state", "sessionId": session, "totalCostUSD": cost,
        "modelUsage": { model: { "costUSD": cost } }, "hasUnknownModelCost": false,
    });
    format!("{line}\n")
}

/// Transcripts of two projects (telemetry off): the window's "By project" list, most expensive
/// first with the full path on hover, its "priced" marker and "N tokens unpriced"; today's
/// sessions marked exact (Claude Code's own cost) or priced (from the price table); and a model
/// without a price showing its tokens and "unpriced", never $0.00.
#[test]
fn window_shows_projects_and_how_each_cost_is_known_light() {
    if session::enter(
        "window_shows_projects_and_how_each_cost_is_known_light",
        &["WebKitWebDriver"],
    ) {
        projects_flow("light");
    }
}

#[test]
fn window_shows_projects_and_how_each_cost_is_known_dark() {
    if session::enter("window_shows_projects_and_how_each_cost_is_known_dark", &["WebKitWebDriver"])
    {
        projects_flow("dark");
    }
}

fn projects_flow(theme: &str) {
    const SONNET: &str = "claude-sonnet-4-5";
    const UNKNOWN: &str = "claude-unknown-9";
    let work = tempfile::Builder::new().prefix("tokentray-projects-").tempdir().expect("tempdir");
    let (alpha, beta) = (work.path().join("alpha"), work.path().join("beta"));
    let claude = work.path().join("claude");
    let projects = claude.join("projects");
    for d in [&alpha, &beta, &projects.join("-alpha"), &projects.join("-beta")] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    // alpha: one session whose money Claude Code stated (cost-state): exact.
    let (s_exact, s_priced, s_unpriced) = (
        "aaaaaaaa-0000-4000-8000-000000000001",
        "bbbbbbbb-0000-4000-8000-000000000002",
        "cccccccc-0000-4000-8000-000000000003",
    );
    let exact_cost = 0.75;
    std::fs::write(
        projects.join("-alpha").join(format!("{s_exact}.jsonl")),
        transcript_assistant(s_exact, "a1", &alpha, SONNET, 1_000, 200)
            + &transcript_assistant(s_exact, "a2", &alpha, SONNET, 3_000, 800)
            + &transcript_cost_state(s_exact, SONNET, exact_cost),
    )
    .expect("write alpha transcript");
    // beta: a session without a cost-state yet (priced from the table) and one of a model no
    // table knows (unpriced).
    let (priced_in, priced_out) = (50_000u64, 60_000u64);
    std::fs::write(
        projects.join("-beta").join(format!("{s_priced}.jsonl")),
        transcript_assistant(s_priced, "b1", &beta, SONNET, priced_in, priced_out),
    )
    .expect("write beta transcript");
    let (unknown_in, unknown_out) = (1_234u64, 56u64);
    std::fs::write(
        projects.join("-beta").join(format!("{s_unpriced}.jsonl")),
        transcript_assistant(s_unpriced, "c1", &beta, UNKNOWN, unknown_in, unknown_out),
    )
    .expect("write unknown-model transcript");
    let priced_cost = tokentray_core::pricing::PriceTable::default()
        .cost(
            "claude-code",
            SONNET,
            &tokentray_core::pricing::Usage {
                input: priced_in,
                output: priced_out,
                ..Default::default()
            },
        )
        .expect("claude-sonnet-4-5 is in the price table");
    assert!(priced_cost > exact_cost, "beta must be the most expensive ({priced_cost})");
    let unpriced_tokens = (unknown_in + unknown_out) as f64;

    let dark = theme == "dark";
    let driver = Driver::start(&[("GTK_THEME", if dark { "Adwaita:dark" } else { "Adwaita" })]);
    let dirs = Dirs::new();
    std::fs::write(
        &dirs.config,
        format!("[transcripts]\npaths = [{:?}]\n", claude.display().to_string()),
    )
    .expect("write config");
    let s = driver.session(&app::bin(), &dirs.args(&["--open"]));
    driver
        .out
        .wait_listening(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no listening line:\n{}", driver.out.text()));

    const ROWS: &str = r#"
const rows = (t) => Array.from(document.querySelectorAll('[data-testid=' + t + ']'));
const d = (r) => Object.assign({ text: r.textContent, title: (r.querySelector('.name span') || {}).title || '' }, r.dataset);
return {
  projectsShown: !document.getElementById('projects').hidden,
  projects: rows('project-row').map(d),
  sessions: rows('session-row').map(d),
  models: rows('model-row').map(d),
  error: document.getElementById('error').hidden ? null : document.getElementById('error').textContent,
  background: getComputedStyle(document.body).backgroundColor,
  badge: (() => { const b = document.querySelector('#projects [data-testid=cost-source]'); return b ? getComputedStyle(b).color : null; })(),
};
"#;
    let read = || s.execute(ROWS, json!([])).unwrap_or_else(|e| json!({ "script_error": e }));
    let num = |v: &Value, k: &str| v[k].as_str().and_then(|x| x.parse::<f64>().ok());
    let text = |v: &Value| v["text"].as_str().unwrap_or("").to_string();
    let exact_n = |n: f64| {
        // en-US grouping, as the window formats whole numbers.
        let s = format!("{}", n as u64);
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    };
    let unpriced_words = format!("{} tokens unpriced", exact_n(unpriced_tokens));

    let mut last = (Value::Null, Vec::new());
    let v = wait_for(Duration::from_secs(60), || {
        let v = read();
        let mut errs: Vec<String> = Vec::new();
        if !v["error"].is_null() {
            errs.push(format!("error shown: {}", v["error"]));
        }
        // By project: beta (priced + unpriced) above alpha (exact), names, paths, costs.
        let p = v["projects"].as_array().cloned().unwrap_or_default();
        let names: Vec<&str> = p.iter().map(|r| r["project"].as_str().unwrap_or("")).collect();
        if v["projectsShown"] != json!(true) || names != ["beta", "alpha"] {
            errs.push(format!("project rows {names:?}, want [beta, alpha]"));
        } else {
            let (b, a) = (&p[0], &p[1]);
            for (row, dir, cost, priced, unpriced) in [
                (b, &beta, priced_cost, "true", unpriced_tokens),
                (a, &alpha, exact_cost, "false", 0.0),
            ] {
                let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
                let path = row["path"].as_str().unwrap_or("");
                if path != canonical.display().to_string() && path != dir.display().to_string() {
                    errs.push(format!("{} path {path:?}, want {}", text(row), dir.display()));
                }
                if row["title"].as_str() != Some(path) {
                    errs.push(format!("project name's hover {} is not its path", row["title"]));
                }
                if !num(row, "cost").is_some_and(|c| approx(c, cost))
                    || !text(row).contains(&otlp::usd(cost))
                {
                    errs.push(format!("{} cost {:?}, want {cost}", text(row), row["cost"]));
                }
                if row["priced"] != json!(priced)
                    || text(row).contains("priced$") != (priced == "true")
                {
                    errs.push(format!(
                        "{}: priced marker {}, want {priced}",
                        text(row),
                        row["priced"]
                    ));
                }
                if num(row, "unpricedTokens") != Some(unpriced)
                    || text(row).contains(&unpriced_words) != (unpriced > 0.0)
                {
                    errs.push(format!(
                        "{}: unpriced tokens {:?}, want {unpriced}",
                        text(row),
                        row["unpricedTokens"]
                    ));
                }
            }
        }
        // Today's sessions: exact / priced markers; the unknown model's session says unpriced.
        let sessions = v["sessions"].as_array().cloned().unwrap_or_default();
        for (id, source, marker) in [
            (s_exact, "exact", "exact$"),
            (s_priced, "priced", "priced$"),
            (s_unpriced, "unpriced", "unpriced"),
        ] {
            match sessions.iter().find(|r| r["session"] == json!(id)) {
                Some(r) if r["source"] == json!(source) && text(r).contains(marker) => {}
                other => errs.push(format!("session {id}: {other:?}, want {source} ({marker})")),
            }
        }
        if let Some(r) = sessions.iter().find(|r| r["session"] == json!(s_unpriced)) {
            if !text(r).contains(&unpriced_words) || text(r).contains("$0.00") {
                errs.push(format!("unpriced session shows {:?}", text(r)));
            }
        }
        // A session known from its transcript alone still says when it started.
        for r in &sessions {
            if text(r).contains('–') {
                errs.push(format!("session without a start time: {:?}", text(r)));
            }
        }
        // By model: the unknown model's tokens and "unpriced" instead of $0.00.
        let models = v["models"].as_array().cloned().unwrap_or_default();
        match models.iter().find(|r| r["model"] == json!(UNKNOWN)) {
            Some(r)
                if num(r, "unpricedTokens") == Some(unpriced_tokens)
                    && text(r).contains(&unpriced_words)
                    && text(r).ends_with("unpriced")
                    && !text(r).contains('$') => {}
            other => errs.push(format!("model {UNKNOWN}: {other:?}, want its tokens and unpriced")),
        }
        match models.iter().find(|r| r["model"] == json!(SONNET)) {
            Some(r) if num(r, "cost").is_some_and(|c| approx(c, exact_cost + priced_cost)) => {}
            other => {
                errs.push(format!("model {SONNET}: {other:?}, want {}", exact_cost + priced_cost))
            }
        }
        if errs.is_empty() {
            Some(v)
        } else {
            last = (v, errs);
            None
        }
    })
    .unwrap_or_else(|| panic!("projects and sources: {}\npage: {:#}", last.1.join("; "), last.0));
    println!("{v:#}");
    // The theme reaches the new rows too: a dark page under a dark GTK theme, and the "priced"
    // badge in a colour that stands out from the card either way.
    let lum = v["background"].as_str().and_then(luminance).expect("background colour");
    assert!(if dark { lum < 0.3 } else { lum > 0.7 }, "{theme} background {}", v["background"]);
    let badge = v["badge"].as_str().and_then(luminance).expect("priced badge colour");
    assert!(
        (badge - lum).abs() > 0.25,
        "{theme}: badge {} on background {}",
        v["badge"],
        v["background"]
    );
    s.execute("document.getElementById('projects').scrollIntoView(); return true;", json!([]))
        .expect("scroll");
    save(&s, &format!("window-{theme}-projects.png"));
    s.end();
}

/// What the daily-use checks read off the page in one script.
const DAILY: &str = r#"
const q = (s) => document.querySelector(s);
const rows = (t) => Array.from(document.querySelectorAll('[data-testid=' + t + ']'));
const visible = (e) => !!e && e.getClientRects().length > 0;
return {
  locale: document.documentElement.dataset.locale,
  todayText: (q('#spend-today') || {}).textContent || '',
  today: Number((q('#spend-today') || { dataset: {} }).dataset.value),
  tabs: visible(q('#tabs')),
  usageShown: visible(q('#dashboard')),
  settingsShown: visible(q('#settings')),
  // Cards a person sees in the Usage view, top to bottom.
  usageCards: Array.from(document.querySelectorAll('#dashboard > section')).filter(visible).map((e) => e.getAttribute('aria-labelledby') || e.getAttribute('aria-label') || e.id),
  budgetFormVisible: visible(q('#budget-form')),
  sessions: rows('session-row').map((r) => Object.assign({ text: r.textContent, started: (r.querySelector('[data-testid=session-started]') || {}).textContent }, r.dataset)),
  agents: rows('agent-row').map((r) => Object.assign({ text: r.textContent }, r.dataset)),
  agentsShown: visible(q('#agents')),
  activity: rows('activity-row').map((r) => ({ kind: r.dataset.kind, time: (r.querySelector('[data-testid=activity-time]') || {}).textContent, text: r.textContent })),
  plan: visible(q('#plan-limits')) ? q('#plan-limits').textContent : null,
  planButton: visible(q('[data-testid=setup-statusline]')),
  planResult: (q('[data-testid=setup-statusline-result]') || {}).textContent || '',
  columns: getComputedStyle(q('#dashboard')).gridTemplateColumns,
  width: document.body.getBoundingClientRect().width,
  viewport: window.innerWidth,
  error: q('#error').hidden ? null : q('#error').textContent,
};
"#;

/// Issue 16's window, with issue 17's per-agent split: the Usage view comes first and settings
/// are a view of their own; today's sessions show start, duration, model(s), cost, an error
/// marker and their project; "By agent" splits today between Claude Code and Codex as
/// `report --by agent` does; Activity dates what is not from today and keeps internal events
/// behind its filter; money follows the user's locale (de-DE here, en-US in the other window
/// tests); the Plan usage card offers its one click (the same as `setup --statusline`); a wide
/// window uses its width. Screenshots at 420 and 1280 px.
#[test]
fn window_daily_use_light() {
    if session::enter("window_daily_use_light", &["WebKitWebDriver"]) {
        daily_use_flow("light");
    }
}

#[test]
fn window_daily_use_dark() {
    if session::enter("window_daily_use_dark", &["WebKitWebDriver"]) {
        daily_use_flow("dark");
    }
}

fn daily_use_flow(theme: &str) {
    const SONNET: &str = "claude-sonnet-4-5";
    let (s_two, s_err, s_old) = (
        "77777777-aaaa-4000-8000-000000000007",
        "88888888-bbbb-4000-8000-000000000008",
        "99999999-cccc-4000-8000-000000000009",
    );
    let s_transcript = "aaaaaaaa-dddd-4000-8000-00000000000a";
    // A session Claude Code ran in the folder "alpha" with telemetry off: its transcript.
    let work = tempfile::Builder::new().prefix("tokentray-daily-").tempdir().expect("tempdir");
    let alpha = work.path().join("alpha");
    let claude = work.path().join("claude");
    let transcripts = claude.join("projects").join("-alpha");
    for d in [&alpha, &transcripts] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    std::fs::write(
        transcripts.join(format!("{s_transcript}.jsonl")),
        transcript_assistant(s_transcript, "d1", &alpha, SONNET, 2_000, 300)
            + &transcript_cost_state(s_transcript, SONNET, 0.4),
    )
    .expect("write transcript");
    let home = std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME"));
    let settings = home.join(".claude/settings.json");
    std::fs::create_dir_all(home.join(".claude")).expect("mkdir ~/.claude");
    std::fs::write(&settings, "{\n  \"theme\": \"dark\"\n}\n").expect("write settings");

    let dark = theme == "dark";
    let driver = Driver::start(&[
        ("GTK_THEME", if dark { "Adwaita:dark" } else { "Adwaita" }),
        ("LANG", "de_DE.UTF-8"),
        ("LC_ALL", "de_DE.UTF-8"),
        ("TOKENTRAY_CLAUDE_MANAGED_SETTINGS", "/nonexistent/managed-settings.json"),
    ]);
    let dirs = Dirs::new();
    std::fs::write(
        &dirs.config,
        format!("[transcripts]\npaths = [{:?}]\n", claude.display().to_string()),
    )
    .expect("write config");
    let s = driver.session(&app::bin(), &dirs.args(&["--open"]));
    let ports = driver
        .out
        .wait_listening(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no listening line:\n{}", driver.out.text()));

    // Telemetry: one session on two models, one with a failed request, an internal event, and
    // a tool result from nine days ago; then a Codex turn.
    let mut second = otlp::point(s_two, "claude-sonnet-4-5", 0.5, [400.0, 100.0, 0.0, 0.0], 0);
    second.new_session = false;
    otlp::send(
        ports.http,
        &[
            otlp::point(s_two, "claude-opus-4-5", 1.25, [1200.0, 300.0, 5000.0, 700.0], 0),
            second,
            otlp::point(s_err, "claude-haiku-4-5", 0.25, [800.0, 50.0, 0.0, 0.0], 0),
        ],
    );
    let t = otlp::now_ns();
    let nine_days_ago = t - 9 * 86_400 * 1_000_000_000;
    otlp::send_events(
        ports.http,
        vec![
            tokentray_core::testkit::event_record(
                s_err,
                "api_error",
                &[("error", "Overloaded"), ("status_code", "529")],
                t + 1_000_000,
            ),
            tokentray_core::testkit::event_record(
                s_err,
                "plugin_loaded",
                &[("plugin.name", "internal-marker-plugin")],
                t + 2_000_000,
            ),
            tokentray_core::testkit::event_record(
                s_old,
                "tool_result",
                &[("tool_name", "Bash"), ("success", "true"), ("duration_ms", "120")],
                nine_days_ago,
            ),
        ],
    );
    otlp::send_codex_turn(ports.http, t);

    // The figures the window must agree with: `report --by agent` on the same history.
    let report = app::report_with_agents(&dirs, &["claude-code", "codex"]);
    let agent_cost = |key: &str| {
        app::agent_cost(&report, key).unwrap_or_else(|| panic!("no {key} in {report:#}"))
    };
    let (claude_cost, codex_cost) = (agent_cost("claude-code"), agent_cost("codex"));
    assert!(codex_cost > 0.0, "Codex's turn is priced: {report:#}");
    let total = report["cost_usd"].as_f64().or_else(|| report["figures"]["cost_usd"].as_f64());
    let total = total.unwrap_or_else(|| panic!("no total in {report:#}"));
    // The user's locale: German decimals, the sign after the amount.
    let de_usd = |v: f64| format!("{:.2}", v).replace('.', ",");
    // And exactly as the tray, the statusline and `report` write it in that locale (their text
    // is checked literally in tests/money_locale.rs): one money format everywhere.
    let de_text = tokentray_core::query::format::MoneyStyle::of_locale("de-DE").usd(total);

    let read = || s.execute(DAILY, json!([])).unwrap_or_else(|e| json!({ "script_error": e }));
    let text = |v: &Value| v["text"].as_str().unwrap_or("").to_string();
    let mut last = (Value::Null, Vec::new());
    let v = wait_for(Duration::from_secs(60), || {
        let v = read();
        let mut errs: Vec<String> = Vec::new();
        if !v["error"].is_null() {
            errs.push(format!("error shown: {}", v["error"]));
        }
        if v["locale"] != json!("de-DE") {
            errs.push(format!("locale {}", v["locale"]));
        }
        let today = v["todayText"].as_str().unwrap_or("");
        if !v["today"].as_f64().is_some_and(|c| approx(c, total))
            || !today.contains(&de_usd(total))
            || !today.contains(&de_text)
            || !today.trim_end().ends_with('$')
        {
            errs.push(format!("today {today:?}, want {de_text:?} (de-DE, as the CLI writes it)"));
        }
        if v["tabs"] != json!(true)
            || v["usageShown"] != json!(true)
            || v["settingsShown"] != json!(false)
        {
            errs.push("the Usage view is not the one shown first".into());
        }
        if v["budgetFormVisible"] != json!(false) {
            errs.push("budget settings visible in the Usage view".into());
        }
        // Sessions: start, duration, models, cost, error marker, project.
        let sessions = v["sessions"].as_array().cloned().unwrap_or_default();
        let row = |id: &str| sessions.iter().find(|r| r["session"] == json!(id)).cloned();
        match row(s_two) {
            Some(r)
                if r["models"] == json!("claude-opus-4-5,claude-sonnet-4-5")
                    && text(&r).contains("claude-opus-4-5, claude-sonnet-4-5")
                    && r["cost"]
                        .as_str()
                        .and_then(|c| c.parse::<f64>().ok())
                        .is_some_and(|c| approx(c, 1.75))
                    && text(&r).contains(&de_usd(1.75))
                    && r["started"].as_str().is_some_and(|t| t.contains(':'))
                    && r["errors"] == json!("0") => {}
            other => errs.push(format!("two-model session: {other:?}")),
        }
        match row(s_err) {
            Some(r) if r["errors"] == json!("1") && text(&r).contains("1 error") => {}
            other => errs.push(format!("failed session without its marker: {other:?}")),
        }
        match row(s_transcript) {
            Some(r) if r["project"] == json!("alpha") && text(&r).contains("in alpha") => {}
            other => errs.push(format!("transcript session without its project: {other:?}")),
        }
        // By agent: the same split as `report --by agent`.
        let agents = v["agents"].as_array().cloned().unwrap_or_default();
        let agent = |a: &str| {
            agents
                .iter()
                .find(|r| r["agent"] == json!(a))
                .and_then(|r| r["cost"].as_str().and_then(|c| c.parse::<f64>().ok()))
        };
        if v["agentsShown"] != json!(true)
            || !agent("claude-code").is_some_and(|c| approx(c, claude_cost))
            || !agent("codex").is_some_and(|c| approx(c, codex_cost))
            || !agents.iter().any(|r| text(r).contains("Codex CLI"))
        {
            errs.push(format!(
                "agent rows {agents:?}, want claude-code {claude_cost}, codex {codex_cost}"
            ));
        }
        // Activity: internal events hidden; the old one dated, today's by the time alone.
        let activity = v["activity"].as_array().cloned().unwrap_or_default();
        if activity.iter().any(|r| r["kind"] == json!("plugin_loaded")) {
            errs.push("an internal event is listed by default".into());
        }
        let old_day = chrono::Local::now() - chrono::Duration::days(9);
        let day = chrono::Datelike::day(&old_day).to_string();
        match activity.iter().find(|r| r["kind"] == json!("tool_result")) {
            Some(r) if r["time"].as_str().is_some_and(|t| t.contains(&day) && t.len() > 5) => {}
            other => {
                errs.push(format!("the nine-day-old event is not dated (day {day}): {other:?}"))
            }
        }
        match activity.iter().find(|r| r["kind"] == json!("api_error")) {
            Some(r) if r["time"].as_str().is_some_and(|t| t.len() == 5 && t.contains(':')) => {}
            other => errs.push(format!("today's event shows more than its time: {other:?}")),
        }
        // Plan usage: visible before any report, with its one click.
        if !v["plan"].as_str().is_some_and(|p| p.contains("status line"))
            || v["planButton"] != json!(true)
        {
            errs.push(format!("plan card {}", v["plan"]));
        }
        if errs.is_empty() {
            Some(v)
        } else {
            last = (v, errs);
            None
        }
    })
    .unwrap_or_else(|| {
        panic!("daily use: {}\npage: {:#}\n{}", last.1.join("; "), last.0, driver.out.text())
    });
    // Usage first: spend, budgets/plan, tokens and charts before the lists.
    let cards: Vec<String> = v["usageCards"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let at = |c: &str| {
        cards.iter().position(|x| x == c).unwrap_or_else(|| panic!("no {c} in {cards:?}"))
    };
    assert!(
        at("Spend") < at("Plan limits")
            && at("Plan limits") < at("tokens-title")
            && at("tokens-title") < at("models-title")
            && at("models-title") < at("sessions-title"),
        "Usage view order {cards:?}"
    );
    save(&s, &format!("window-{theme}-420-usage.png"));

    // Internal events are one choice away.
    let pick = |css: &str| {
        s.click(&s.find(css).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("click {css}: {e}"))
    };
    s.execute(
        "document.querySelector('[data-testid=activity]').scrollIntoView(); return true;",
        json!([]),
    )
    .expect("scroll");
    pick("#activity-kind");
    pick("#activity-kind option[value=all]");
    let internal = wait_for(Duration::from_secs(10), || {
        let v = read();
        v["activity"]
            .as_array()
            .is_some_and(|a| a.iter().any(|r| r["kind"] == json!("plugin_loaded")))
            .then_some(v)
    });
    assert!(internal.is_some(), "internal events not listed with the filter: {:#}", read());
    save(&s, &format!("window-{theme}-420-activity.png"));

    // "Show plan limits": Claude Code's status line becomes tokentray's, telemetry set up too,
    // the user's other keys kept.
    s.execute("document.getElementById('plan-limits').scrollIntoView(); return true;", json!([]))
        .expect("scroll");
    pick("[data-testid=setup-statusline]");
    let said = wait_for(Duration::from_secs(15), || {
        let v = read();
        v["planResult"].as_str().filter(|t| !t.is_empty()).map(str::to_string)
    })
    .unwrap_or_else(|| panic!("no answer from Show plan limits:\n{}", driver.out.text()));
    assert!(said.contains("status line"), "{said}");
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&settings).expect("read settings"))
            .expect("settings JSON");
    assert_eq!(written["theme"], "dark", "other keys kept: {written:#}");
    let command = written["statusLine"]["command"].as_str().unwrap_or("");
    assert!(
        command.contains("tokentray")
            && !command.contains("tokentray-window")
            && command.ends_with(" statusline")
            && command.contains(&*dirs.data_dir.to_string_lossy()),
        "statusLine {written:#}"
    );
    assert_eq!(
        written["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"],
        format!("http://127.0.0.1:{}", ports.grpc.port()),
        "{written:#}"
    );

    // Settings: their own view.
    show_settings(&s);
    save(&s, &format!("window-{theme}-420-settings.png"));
    pick("[data-testid=tab-usage]");

    // A wide window: two columns of cards across the width.
    s.set_window_size(1280, 900).expect("resize the window");
    let wide = wait_for(Duration::from_secs(15), || {
        let v = read();
        let cols = v["columns"].as_str().unwrap_or("").split_whitespace().count();
        (v["viewport"].as_f64().is_some_and(|w| w >= 1200.0)
            && v["width"].as_f64().is_some_and(|w| w > 1000.0)
            && cols == 2)
            .then_some(v)
    });
    assert!(wide.is_some(), "the page does not use a wide window: {:#}", read());
    s.execute("window.scrollTo(0, 0); return true;", json!([])).expect("scroll");
    save(&s, &format!("window-{theme}-1280-usage.png"));
    s.end();
}
