//! The tray, tested the way a panel uses it: over D-Bus. A StatusNotifierWatcher (in this test)
//! records the item the app registers; the test reads its label and menu and clicks the entries,
//! in a headless X + D-Bus session the test starts itself (see support_desktop::session).
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support_desktop/mod.rs"]
mod support_desktop;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use support_desktop::app::{self, App, Dirs};
use support_desktop::notifications::Notifications;
use support_desktop::otlp;
use support_desktop::session;
use support_desktop::sni::{self, Item, MenuNode, Portal, Watcher};
use support_desktop::{proc, wait_for, x11};

const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);

/// Counts as the tray prints them (`tokentray report` style).
fn count(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn info_line(f: &otlp::Figures) -> String {
    let sessions = if f.sessions == 1.0 {
        "1 session".to_string()
    } else {
        format!("{} sessions", count(f.sessions))
    };
    format!("Today: {} · {sessions} · {} tokens", otlp::usd(f.cost), count(f.total_tokens()))
}

fn wait_label(item: &Item, want: &str, timeout: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    wait_for(timeout, || (item.label() == want).then(|| start.elapsed()))
        .ok_or_else(|| format!("label {:?}, want {want:?}", item.label()))
}

fn entry<'a>(menu: &'a MenuNode, label: &str) -> &'a MenuNode {
    menu.find(label).unwrap_or_else(|| {
        panic!(
            "no menu entry {label:?} in {:#?}",
            menu.flatten().iter().map(|n| &n.label).collect::<Vec<_>>()
        )
    })
}

/// Mapped dashboard windows (GTK's tray fallback icon may carry the name too, at 16x16).
fn dashboards() -> usize {
    x11::windows("tokentray", 300).len()
}

/// The window's processes under the tray: `tokentray-window` and WebKit's helpers.
fn window_processes(pid: u32) -> usize {
    proc::descendants(pid)
        .into_iter()
        .filter(|(_, n)| n.starts_with("WebKit") || n.starts_with("tokentray"))
        .count()
}

/// The menu once the app exported it (the label can be there a moment before the entries).
fn menu_with(item: &Item, label: &str) -> MenuNode {
    wait_for(Duration::from_secs(10), || {
        let m = item.menu();
        m.find(label).is_some().then_some(m)
    })
    .unwrap_or_else(|| {
        panic!(
            "no menu entry {label:?} in {:?}",
            item.menu().flatten().iter().map(|n| &n.label).collect::<Vec<_>>()
        )
    })
}

/// The pixels of `icons/tray-<state>-<panel>.png`, the picture the tray should show.
fn icon_file(state: &str, panel: &str) -> Vec<u8> {
    let path = format!("{}/icons/tray-{state}-{panel}.png", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    sni::decode_png(&bytes).unwrap_or_else(|| panic!("{path} is not a PNG")).2
}

/// Which committed icon the item shows (compared by content), or what it shows instead.
fn shown_icon(item: &Item) -> String {
    let Some((w, h, rgba)) = item.icon_rgba() else {
        return format!("<no icon readable at {:?}>", item.icon_name());
    };
    for state in ["normal", "warning", "over", "problem", "paused"] {
        for panel in ["dark", "light"] {
            if icon_file(state, panel) == rgba {
                return format!("{state}-{panel}");
            }
        }
    }
    // Not one of ours: say what it mostly is.
    let opaque: Vec<&[u8]> = rgba.chunks_exact(4).filter(|p| p[3] == 255).collect();
    let n = opaque.len().max(1);
    let mean = |c: usize| opaque.iter().map(|p| usize::from(p[c])).sum::<usize>() / n;
    format!("<unknown {w}x{h} icon, mean colour {:?}>", (mean(0), mean(1), mean(2)))
}

/// Waits until the item shows the icon `want` (`state-panel`, e.g. `over-dark`).
fn wait_icon(item: &Item, want: &str, out: &app::Output) {
    wait_for(Duration::from_secs(10), || (shown_icon(item) == want).then_some(()))
        .unwrap_or_else(|| panic!("tray icon {}, want {want}\n{}", shown_icon(item), out.text()));
}

/// Quits from the menu, as a user does; the app exits with 0.
fn quit(item: &Item, app: &mut App) {
    item.click(entry(&item.menu(), "Quit").id);
    let code = app.wait_exit(Duration::from_secs(20)).and_then(|s| s.code());
    assert_eq!(code, Some(0), "{}", app.out.text());
}

/// The app started on `dirs` where a tray host (the test's watcher) is there: the watcher, the
/// app, its ports and the item it registered.
fn start_with_host(dirs: &Dirs) -> (Watcher, App, app::Listening, Item) {
    let watcher = Watcher::start();
    let (tray, ports) = App::start(dirs, &[]);
    let item = watcher
        .wait_item(0, REGISTER_TIMEOUT)
        .unwrap_or_else(|| panic!("no StatusNotifierItem registered:\n{}", tray.out.text()));
    (watcher, tray, ports, item)
}

/// Waits until the menu's "Today: …" row satisfies `ok` (`want` says what it should read).
fn wait_info_row(item: &Item, want: &str, ok: impl Fn(&str) -> bool) {
    assert!(
        wait_for(Duration::from_secs(10), || item
            .menu()
            .find("Today:")
            .filter(|n| ok(&n.label))
            .map(|_| ()))
        .is_some(),
        "info row {:?}, want {want}",
        item.menu().find("Today:").map(|n| n.label.clone())
    );
}

fn autostart_file() -> std::path::PathBuf {
    std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME"))
        .join(".config/autostart/tokentray.desktop")
}

#[test]
fn tray_shows_spend_and_its_menu_works_over_dbus() {
    if !session::enter("tray_shows_spend_and_its_menu_works_over_dbus", &[]) {
        return;
    }
    let dirs = Dirs::new();
    let (watcher, mut tray, ports, item) = start_with_host(&dirs);

    // Empty history: $0.00, and the menu has its final shape.
    wait_label(&item, "$0.00", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", tray.out.text()));
    let menu = menu_with(&item, "Today: $0.00");
    let labels: Vec<&str> = menu
        .flatten()
        .into_iter()
        .filter(|n| n.visible && !n.separator)
        .map(|n| n.label.as_str())
        .collect();
    assert_eq!(
        labels,
        [
            "Open dashboard",
            "Today: $0.00 · 0 sessions · 0 tokens",
            "Forward to team",
            "Start at login",
            "Pause alerts",
            "Quit"
        ],
        "{menu:#?}"
    );
    assert!(entry(&menu, "Open dashboard").enabled);
    assert!(!entry(&menu, "Today:").enabled, "the info row is not clickable");
    // The first run turns start-at-login on, once it knows a tray host shows the icon; the rest
    // starts unchecked.
    assert!(
        wait_for(Duration::from_secs(10), || autostart_file().exists().then_some(())).is_some(),
        "the first run writes the login entry (a tray host is there):\n{}",
        tray.out.text()
    );
    let menu = wait_for(Duration::from_secs(5), || {
        Some(item.menu()).filter(|m| m.find("Start at login").is_some_and(|e| e.toggle_state == 1))
    })
    .unwrap_or_else(|| {
        panic!("Start at login not checked: {:?}", item.menu().find("Start at login"))
    });
    for (label, enabled, checked) in
        [("Forward to team", false, 0), ("Start at login", true, 1), ("Pause alerts", true, 0)]
    {
        let e = entry(&menu, label);
        assert_eq!(e.toggle_type, "checkmark", "{label} is a checkbox");
        assert_eq!(e.enabled, enabled, "{label} enabled");
        assert_eq!(e.toggle_state, checked, "{label} checked at start");
    }
    // No desktop preference known (no settings portal here): the variant for dark panels.
    wait_icon(&item, "normal-dark", &tray.out);
    assert!(entry(&menu, "Quit").enabled);

    // Spend arrives over OTLP: the label and the info row follow. The promised delay (within a
    // second) is a benchmark's figure, not asserted here: the test waits generously and prints it.
    let history = otlp::history();
    otlp::send(ports.http, &history);
    let expected = otlp::expected(&history);
    let latency = wait_label(&item, &otlp::usd(expected.today.cost), Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}", tray.out.text()));
    println!("tray label updated {} ms after the data was acknowledged", latency.as_millis());
    let want_info = info_line(&expected.today);
    wait_info_row(&item, &format!("{want_info:?}"), |l| l == want_info);

    // Open dashboard: a window appears on the display.
    assert_eq!(dashboards(), 0, "no window before it is asked for");
    item.click(entry(&item.menu(), "Open dashboard").id);
    assert!(
        tray.out.wait_for("window opened", Duration::from_secs(20)),
        "no window opened:\n{}",
        tray.out.text()
    );
    assert!(
        wait_for(Duration::from_secs(10), || (dashboards() == 1).then_some(())).is_some(),
        "no dashboard window mapped"
    );
    assert!(
        wait_for(Duration::from_secs(10), || (window_processes(tray.pid) >= 2).then_some(()))
            .is_some(),
        "no window process with WebKit: {:?}",
        proc::descendants(tray.pid)
    );

    // Closing it (as the window manager's close button does) keeps the app and its engine in the
    // tray, and ends every process of the window: nothing of WebKit stays resident.
    assert_eq!(x11::close("tokentray", 300), 1);
    assert!(
        tray.out.wait_for("window closed", Duration::from_secs(10)),
        "window not closed:\n{}",
        tray.out.text()
    );
    assert!(
        wait_for(Duration::from_secs(15), || (window_processes(tray.pid) == 0).then_some(()))
            .is_some(),
        "still running after close: {:?}",
        proc::descendants(tray.pid)
    );
    assert_eq!(dashboards(), 0);
    assert!(tray.try_status().is_none(), "the app exited with its window:\n{}", tray.out.text());
    assert!(app::metrics_ok(ports.metrics), "the engine stopped with the window");

    // A second launch hands over to the first, which opens its window anew, and exits without
    // starting an engine.
    let started = Instant::now();
    let mut second = App::spawn(&dirs.args(&[]));
    let status = second
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("second launch still running:\n{}", second.out.text()));
    println!("second launch exited in {} ms", started.elapsed().as_millis());
    assert!(status.success(), "second launch: {status}\n{}", second.out.text());
    assert!(
        !second.out.contains("listening "),
        "second launch started an engine:\n{}",
        second.out.text()
    );
    assert!(
        tray.out.wait_for("another launch: opening the window", Duration::from_secs(5)),
        "{}",
        tray.out.text()
    );
    assert!(
        wait_for(Duration::from_secs(20), || (tray.out.count("window opened") == 2).then_some(()))
            .is_some(),
        "window not reopened:\n{}",
        tray.out.text()
    );
    assert!(
        wait_for(Duration::from_secs(10), || (dashboards() == 1).then_some(())).is_some(),
        "no dashboard window after the second launch"
    );
    assert!(app::metrics_ok(ports.metrics), "the first instance still serves /metrics");
    assert_eq!(watcher.registered(), 1, "only one tray item");

    // Start at login (on since the first run): unticking removes the XDG autostart entry,
    // ticking writes it again; the checkbox shows the real state.
    let file = autostart_file();
    let text = std::fs::read_to_string(&file).expect("read autostart entry");
    let exec = text.lines().find(|l| l.starts_with("Exec=")).unwrap_or_default().to_string();
    assert!(
        exec.starts_with(&format!(
            "Exec={} tray --data-dir {}",
            app::bin(),
            dirs.data_dir.display()
        )),
        "{text}"
    );
    item.click(entry(&item.menu(), "Start at login").id);
    assert!(
        wait_for(Duration::from_secs(5), || (!file.exists()).then_some(())).is_some(),
        "{} not removed",
        file.display()
    );
    assert!(
        wait_for(Duration::from_secs(3), || (entry(&item.menu(), "Start at login").toggle_state
            == 0)
            .then_some(()))
        .is_some(),
        "checkbox still checked"
    );
    item.click(entry(&item.menu(), "Start at login").id);
    assert!(
        wait_for(Duration::from_secs(5), || file.exists().then_some(())).is_some(),
        "{} not written:\n{}",
        file.display(),
        tray.out.text()
    );
    assert!(
        wait_for(Duration::from_secs(3), || (entry(&item.menu(), "Start at login").toggle_state
            == 1)
            .then_some(()))
        .is_some(),
        "checkbox not checked"
    );
    // A user who turned it off keeps it off: a later run of the same data directory does not
    // turn it on again.
    item.click(entry(&item.menu(), "Start at login").id);
    assert!(
        wait_for(Duration::from_secs(5), || (!file.exists()).then_some(())).is_some(),
        "{} not removed",
        file.display()
    );

    // Quit (with the window open): exit code 0, the window process gone, every port released.
    let window_pids: Vec<u32> = proc::children(tray.pid)
        .into_iter()
        .filter(|(_, n)| n.starts_with("tokentray"))
        .map(|(p, _)| p)
        .collect();
    assert_eq!(window_pids.len(), 1, "one window process: {:?}", proc::descendants(tray.pid));
    item.click(entry(&item.menu(), "Quit").id);
    let status = tray
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("still running after Quit:\n{}", tray.out.text()));
    assert_eq!(status.code(), Some(0), "{}", tray.out.text());
    assert!(
        wait_for(Duration::from_secs(5), || (!proc::alive(window_pids[0])).then_some(())).is_some(),
        "the window process outlived Quit"
    );
    for addr in [ports.grpc, ports.http, ports.metrics] {
        assert!(TcpListener::bind(addr).is_ok(), "{addr} still held after Quit");
    }

    // A later run of the same data directory keeps the user's choice: start at login stays off.
    let (mut again, _) = App::start(&dirs, &[]);
    let item = watcher
        .wait_item(1, REGISTER_TIMEOUT)
        .unwrap_or_else(|| panic!("no tray item on the next run:\n{}", again.out.text()));
    let menu = menu_with(&item, "Start at login");
    assert_eq!(entry(&menu, "Start at login").toggle_state, 0, "start at login turned on again");
    assert!(!file.exists(), "the login entry came back");
    quit(&item, &mut again);
}

#[test]
fn beside_a_running_engine_the_tray_views_its_history() {
    if !session::enter("beside_a_running_engine_the_tray_views_its_history", &[]) {
        return;
    }
    // `tokentray serve` already runs on the same data dir and holds the ports.
    let dirs = Dirs::new();
    let mut serve = App::spawn(&{
        let mut a = vec![
            "--data-dir".to_string(),
            dirs.data_dir.display().to_string(),
            "--config".into(),
            dirs.config.display().to_string(),
            "serve".into(),
        ];
        for flag in ["--otlp-grpc", "--otlp-http", "--metrics"] {
            a.push(flag.into());
            a.push("127.0.0.1:0".into());
        }
        a
    });
    let held = serve
        .out
        .wait_listening(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("serve did not start:\n{}", serve.out.text()));
    let port = held.grpc.port();
    let watcher = Watcher::start();
    let (grpc, http, metrics) =
        (held.grpc.to_string(), held.http.to_string(), held.metrics.to_string());
    let mut tray = App::spawn(&dirs.args(&[
        "--otlp-grpc",
        &grpc,
        "--otlp-http",
        &http,
        "--metrics",
        &metrics,
    ]));
    let item = watcher
        .wait_item(0, REGISTER_TIMEOUT)
        .unwrap_or_else(|| panic!("no StatusNotifierItem registered:\n{}", tray.out.text()));

    // Issue 14/16: a viewer of the running engine's history, its spend in the label, and the
    // menu says whose history it is.
    wait_label(&item, "$0.00", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", tray.out.text()));
    let menu = menu_with(&item, "Today: $0.00");
    let status = entry(&menu, "Showing the history of the tokentray engine already running");
    assert!(status.label.contains(&format!("pid {}", serve.pid)), "{status:?}");
    assert!(!status.enabled);
    assert!(tray.out.contains("the tray shows its history"), "{}", tray.out.text());
    assert!(!tray.out.contains("listening "), "no engine started:\n{}", tray.out.text());
    let _ = port;
    std::thread::sleep(Duration::from_secs(1));
    assert!(tray.try_status().is_none(), "the app exited:\n{}", tray.out.text());

    // What `serve` receives shows in the label and the info row.
    let history = otlp::history();
    otlp::send(held.http, &history);
    let today = otlp::expected(&history).today;
    let want = info_line(&today);
    wait_info_row(&item, &format!("{want:?}"), |l| l == want);
    let label = tokentray_core::query::format::usd(today.cost);
    wait_label(&item, &label, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", tray.out.text()));
    // Viewing a running tokentray engine is no problem: the normal icon, as with its own.
    wait_icon(&item, "normal-dark", &tray.out);
    assert!(!tray.out.contains("state=Problem"), "{}", tray.out.text());

    // SIGTERM (logout, `kill`) ends it as Quit does; `serve` keeps its ports.
    proc::signal(tray.pid, "TERM");
    let code = tray.wait_exit(Duration::from_secs(20)).and_then(|s| s.code());
    assert_eq!(code, Some(0), "{}", tray.out.text());
    assert!(app::metrics_ok(held.metrics), "serve lost its ports");
    serve.kill();
}

/// Issue 17: the label is today's spend of every agent together. Claude Code's usage (OTLP
/// metrics) and a Codex turn (OTLP/JSON logs, priced by tokentray) arrive at the same engine; the
/// label and the info row show the sum of the two agents' rows of `report today --by agent`.
#[test]
fn tray_label_is_the_sum_of_every_agents_spend() {
    if !session::enter("tray_label_is_the_sum_of_every_agents_spend", &[]) {
        return;
    }
    let dirs = Dirs::new();
    let (_watcher, mut tray, ports, item) = start_with_host(&dirs);
    wait_label(&item, "$0.00", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", tray.out.text()));

    // Below a cent, where the label has four decimals: Codex's turn costs $0.00135, which in
    // whole cents would vanish in the sum. No sum lies on a rounding boundary.
    let claude_points = [
        otlp::point(
            "12121212-aaaa-4000-8000-000000000012",
            "claude-haiku-4-5",
            0.00421,
            [1200.0, 300.0, 0.0, 0.0],
            0,
        ),
        otlp::point(
            "13131313-bbbb-4000-8000-000000000013",
            "claude-haiku-4-5",
            0.00102,
            [400.0, 100.0, 0.0, 0.0],
            0,
        ),
    ];
    otlp::send(ports.http, &claude_points);
    otlp::send_codex_turn(ports.http, otlp::now_ns());

    let report = app::report_with_agents(&dirs, &["claude-code", "codex"]);
    let cost = |agent: &str| {
        app::agent_cost(&report, agent).unwrap_or_else(|| panic!("no {agent} in {report:#}"))
    };
    let (claude, codex) = (cost("claude-code"), cost("codex"));
    let sent = otlp::expected(&claude_points).today.cost;
    assert!(otlp::approx(claude, sent), "Claude Code {claude}, sent {sent}: {report:#}");
    // The capture's request (tests/fixtures/codex/expected.json): 500 uncached + 1000 cached
    // input, 60 output tokens of gpt-5-codex, at LiteLLM's prices (BerriAI/litellm commit
    // 00035b69f416, read 2026-12-02; USD per million: 1.25 input, 0.125 cached, 10 output),
    // written here so that a wrong table fails this test.
    let codex_want = (500.0 * 1.25 + 1000.0 * 0.125 + 60.0 * 10.0) / 1e6;
    assert!(codex > 0.0, "Codex's turn is priced: {report:#}");
    assert!(otlp::approx(codex, codex_want), "Codex {codex}, want {codex_want}: {report:#}");
    let total = report["cost_usd"].as_f64().unwrap_or_else(|| panic!("no total in {report:#}"));
    assert!(otlp::approx(total, claude + codex), "the report's total is the agents' sum");
    let want = otlp::usd(claude + codex);
    // The sum, not one agent's spend: it reads differently from either alone.
    assert!(want != otlp::usd(claude) && want != otlp::usd(codex), "{want}: {report:#}");
    println!("Claude Code {claude} + Codex {codex}: tray label {want}");

    wait_label(&item, &want, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{report:#}\n{}", tray.out.text()));
    let info = format!("Today: {want} · ");
    wait_info_row(&item, &format!("it to start with {info:?}"), |l| l.starts_with(&info));
    quit(&item, &mut tray);
}

/// Issue 16's "one money format everywhere": in a German locale the label, the menu's "Today"
/// row and the budget alert write amounts as `report` and the window do there (`1.234,50 $`,
/// checked for the CLI in tests/money_locale.rs), not `$1234.50`.
#[test]
fn the_tray_writes_money_the_way_the_users_locale_does() {
    if !session::enter("the_tray_writes_money_the_way_the_users_locale_does", &[]) {
        return;
    }
    let notifications = Notifications::start();
    let dirs = Dirs::new();
    std::fs::write(&dirs.config, "[budgets]\ndaily = 2000\n").expect("write config");
    let watcher = Watcher::start();
    let de = [("LC_ALL", "de_DE.UTF-8"), ("LANG", "de_DE.UTF-8")];
    let (mut tray, ports) = App::start_with_env(&dirs, &[], &de);
    let item = watcher
        .wait_item(0, REGISTER_TIMEOUT)
        .unwrap_or_else(|| panic!("no StatusNotifierItem registered:\n{}", tray.out.text()));
    wait_label(&item, "0,00\u{a0}$ / 2.000\u{a0}$", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", tray.out.text()));

    // $1,234.50 of $2,000: past 50 %.
    otlp::send(
        ports.http,
        &[otlp::point(
            "14141414-aaaa-4000-8000-000000000014",
            "claude-opus-4-5",
            1234.5,
            [100.0, 10.0, 0.0, 0.0],
            0,
        )],
    );
    wait_label(&item, "1.234,50\u{a0}$ / 2.000\u{a0}$", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", tray.out.text()));
    wait_info_row(&item, "Today: 1.234,50 $ · …", |l| {
        l.starts_with("Today: 1.234,50\u{a0}$ · ")
    });
    let shown = notifications
        .wait_count(1, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no notification:\n{}", tray.out.text()));
    assert!(
        shown[0].body.starts_with("50% of your 2.000\u{a0}$ daily budget (1.234,50\u{a0}$)."),
        "{:?}",
        shown[0]
    );
    quit(&item, &mut tray);
}

/// With a daily budget the label reads `$spent / $limit`; crossing a threshold pops one desktop
/// notification from the tray app itself; "Pause alerts" silences the next crossing and
/// unpausing lets the following one through.
#[test]
fn budget_in_the_label_alerts_on_the_desktop_and_pause_silences_them() {
    if !session::enter("budget_in_the_label_alerts_on_the_desktop_and_pause_silences_them", &[]) {
        return;
    }
    let notifications = Notifications::start();
    let dirs = Dirs::new();
    std::fs::write(&dirs.config, "[budgets]\ndaily = 2\n").expect("write config");
    let (_watcher, mut tray, ports, item) = start_with_host(&dirs);
    wait_label(&item, "$0.00 / $2", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", tray.out.text()));
    wait_icon(&item, "normal-dark", &tray.out);

    let spend = |session: &str, cost: f64| {
        otlp::send(
            ports.http,
            &[otlp::point(session, "claude-opus-4-5", cost, [100.0, 10.0, 0.0, 0.0], 0)],
        )
    };

    // $1.25 of $2: 62.5 %, past 50.
    spend("11111111-aaaa-4000-8000-00000000000a", 1.25);
    wait_label(&item, "$1.25 / $2", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", tray.out.text()));
    let shown = notifications
        .wait_count(1, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no notification:\n{}", tray.out.text()));
    assert_eq!(shown[0].app_name, "tokentray");
    assert_eq!(shown[0].summary, "Daily budget: 50% reached");
    assert!(shown[0].body.starts_with("50% of your $2 daily budget ($1.25)."), "{:?}", shown[0]);
    // Past a threshold: the warning icon.
    wait_icon(&item, "warning-dark", &tray.out);

    // Paused: crossing 80 % shows nothing; the checkbox says so.
    item.click(entry(&item.menu(), "Pause alerts").id);
    assert!(
        wait_for(Duration::from_secs(3), || (entry(&item.menu(), "Pause alerts").toggle_state
            == 1)
            .then_some(()))
        .is_some(),
        "checkbox not checked"
    );
    assert!(
        tray.out.wait_for("budget alerts paused", Duration::from_secs(3)),
        "{}",
        tray.out.text()
    );
    // Paused alerts: the paused icon.
    wait_icon(&item, "paused-dark", &tray.out);
    spend("11111111-aaaa-4000-8000-00000000000a", 0.5);
    wait_label(&item, "$1.75 / $2", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", tray.out.text()));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        notifications.shown().len(),
        1,
        "notified while paused: {:?}",
        notifications.shown()
    );

    // Resumed: reaching the limit notifies (80 % stays handled, it was crossed while paused).
    item.click(entry(&item.menu(), "Pause alerts").id);
    assert!(
        wait_for(Duration::from_secs(3), || (entry(&item.menu(), "Pause alerts").toggle_state
            == 0)
            .then_some(()))
        .is_some(),
        "checkbox still checked"
    );
    spend("11111111-aaaa-4000-8000-00000000000a", 0.25);
    wait_label(&item, "$2.00 / $2", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", tray.out.text()));
    let shown = notifications
        .wait_count(2, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no notification at the limit:\n{}", tray.out.text()));
    assert_eq!(shown.len(), 2, "{shown:?}");
    assert_eq!(shown[1].summary, "Daily budget: 100% reached");
    assert!(shown[1].body.starts_with("100% of your $2 daily budget ($2.00)."), "{:?}", shown[1]);
    // Resumed and at the limit: the over icon; paused again: the paused icon; resumed: over.
    wait_icon(&item, "over-dark", &tray.out);
    item.click(entry(&item.menu(), "Pause alerts").id);
    wait_icon(&item, "paused-dark", &tray.out);
    item.click(entry(&item.menu(), "Pause alerts").id);
    wait_icon(&item, "over-dark", &tray.out);
    // Set only when the state changes: one change per state reached above.
    let changes = tray.out.count("tray icon changed");
    assert_eq!(changes, 6, "icon changes:\n{}", tray.out.text());

    item.click(entry(&item.menu(), "Quit").id);
    let status = tray
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("still running after Quit:\n{}", tray.out.text()));
    assert_eq!(status.code(), Some(0), "{}", tray.out.text());
}

/// "Forward to team" is greyed out until `[forward]` names an endpoint, which here is written
/// while the app runs (as `tokentray forward setup` does); then ticking it turns forwarding on in
/// the database, unticking turns it off, and the choice survives a restart. A collector that
/// refuses the credentials pauses forwarding, which the entry says.
#[test]
fn forward_to_team_follows_setup_and_switches_forwarding() {
    if !session::enter(
        "forward_to_team_follows_setup_and_switches_forwarding",
        &["gnome-keyring-daemon"],
    ) {
        return;
    }
    // The forwarder reads its headers from the keychain (none stored here) before each send.
    session::unlock_keyring();
    let dirs = Dirs::new();
    let (watcher, mut tray, _ports, item) = start_with_host(&dirs);
    let forward = |item: &Item| entry(&item.menu(), "Forward to team").clone();

    // No config file: nothing to forward to.
    let menu = menu_with(&item, "Today: $0.00");
    let e = entry(&menu, "Forward to team");
    assert!(!e.enabled && e.toggle_state == 0, "{e:?}");
    assert!(!dirs.forward_enabled());

    // Set up while running: a collector address nothing listens on.
    dirs.write_forward_config();
    let e = wait_for(Duration::from_secs(12), || Some(forward(&item)).filter(|e| e.enabled))
        .unwrap_or_else(|| {
            panic!("checkbox still disabled: {:?}\n{}", forward(&item), tray.out.text())
        });
    assert_eq!(e.toggle_type, "checkmark");
    assert_eq!(e.toggle_state, 0, "set up, not yet on");
    assert!(!dirs.forward_enabled());

    // Tick: on in the database, and the checkbox says so; untick: off.
    item.click(forward(&item).id);
    assert!(
        wait_for(Duration::from_secs(3), || dirs.forward_enabled().then_some(())).is_some(),
        "forward.enabled not set:\n{}",
        tray.out.text()
    );
    assert!(
        wait_for(Duration::from_secs(3), || (forward(&item).toggle_state == 1).then_some(()))
            .is_some(),
        "checkbox not checked: {:?}",
        forward(&item)
    );
    // The engine's forwarder follows the switch by itself.
    assert!(
        tray.out.wait_for("forwarding switched on=true", Duration::from_secs(10)),
        "{}",
        tray.out.text()
    );
    item.click(forward(&item).id);
    assert!(
        wait_for(Duration::from_secs(3), || (!dirs.forward_enabled()).then_some(())).is_some(),
        "forward.enabled still set"
    );
    assert!(
        wait_for(Duration::from_secs(3), || (forward(&item).toggle_state == 0).then_some(()))
            .is_some(),
        "checkbox still checked: {:?}",
        forward(&item)
    );

    // On again, Quit, start again: still on (the switch lives in the database).
    item.click(forward(&item).id);
    assert!(
        wait_for(Duration::from_secs(3), || dirs.forward_enabled().then_some(())).is_some(),
        "forward.enabled not set"
    );
    quit(&item, &mut tray);
    let (mut again, ports) = App::start(&dirs, &[]);
    let item = watcher
        .wait_item(1, REGISTER_TIMEOUT)
        .unwrap_or_else(|| panic!("no tray item on the next run:\n{}", again.out.text()));
    let e = wait_for(Duration::from_secs(10), || {
        item.menu().find("Forward to team").cloned().filter(|e| e.enabled && e.toggle_state == 1)
    })
    .unwrap_or_else(|| {
        panic!("not enabled and checked after a restart: {:?}", item.menu().find("Forward to team"))
    });
    assert_eq!(e.label, "Forward to team", "no pause for an unreachable collector (it retries)");

    // A collector that refuses the credentials: forwarding pauses, and the entry says why.
    let collector = refusing_collector();
    std::fs::write(
        &dirs.config,
        format!("[forward]\nendpoint = \"http://{collector}\"\nprotocol = \"http/protobuf\"\n"),
    )
    .expect("write config");
    otlp::send(ports.http, &otlp::history());
    let want = "Forward to team — paused: 401 Unauthorized";
    let e = wait_for(Duration::from_secs(15), || item.menu().find(want).cloned()).unwrap_or_else(
        || {
            panic!(
                "no pause shown: {:?}\n{}",
                item.menu().find("Forward to team"),
                again.out.text()
            )
        },
    );
    println!("paused entry: {}", e.label);
    assert!(e.enabled && e.toggle_state == 1 && e.label.chars().count() < 80, "{e:?}");
    // Unticked: off, and no pause to speak of.
    item.click(e.id);
    let e = wait_for(Duration::from_secs(5), || {
        item.menu().find("Forward to team").cloned().filter(|e| e.toggle_state == 0)
    })
    .expect("unticked");
    assert_eq!(e.label, "Forward to team");
    assert!(!dirs.forward_enabled());
    quit(&item, &mut again);
}

/// A port held by a program that is not tokentray: the engine cannot start, and the icon says
/// there is a problem (here on a desktop that prefers light, so in the light panel's variant).
#[test]
fn ports_held_by_another_program_show_the_problem_icon() {
    if !session::enter("ports_held_by_another_program_show_the_problem_icon", &[]) {
        return;
    }
    let _portal = Portal::start(2);
    let watcher = Watcher::start();
    let dirs = Dirs::new();
    let foreign = TcpListener::bind("127.0.0.1:0").expect("bind a foreign listener");
    let held = foreign.local_addr().expect("its address").to_string();
    let mut tray = App::spawn(&dirs.args(&["--otlp-grpc", &held]));
    let item = watcher
        .wait_item(0, REGISTER_TIMEOUT)
        .unwrap_or_else(|| panic!("no StatusNotifierItem registered:\n{}", tray.out.text()));
    wait_label(&item, "Ports in use — engine not started", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", tray.out.text()));
    wait_icon(&item, "problem-light", &tray.out);
    let menu = menu_with(&item, "Ports in use");
    assert!(entry(&menu, "Ports in use")
        .label
        .contains(&format!("port {}", foreign.local_addr().unwrap().port())));
    quit(&item, &mut tray);
}

/// Stock GNOME has no tray host (no StatusNotifierWatcher on the session bus): the app says so
/// once, in its log and as a desktop notification, opens the dashboard window instead, and does
/// not turn on start-at-login for an icon nobody can see.
#[test]
fn without_a_tray_host_it_says_so_and_opens_the_window() {
    if !session::enter("without_a_tray_host_it_says_so_and_opens_the_window", &[]) {
        return;
    }
    let notifications = Notifications::start();
    let dirs = Dirs::new();
    let (mut tray, ports) = App::start(&dirs, &[]);
    assert!(
        tray.out.wait_for("no tray host on this desktop", Duration::from_secs(30)),
        "no log line:\n{}",
        tray.out.text()
    );
    let shown = notifications
        .wait_count(1, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no notification:\n{}", tray.out.text()));
    assert_eq!(shown[0].app_name, "tokentray");
    assert_eq!(shown[0].summary, "tokentray: no tray on this desktop");
    assert!(
        shown[0].body.contains("shows no tray icons")
            && shown[0].body.contains("AppIndicator")
            && shown[0].body.contains("the dashboard window is open now"),
        "{:?}",
        shown[0]
    );
    // The window instead.
    assert!(
        tray.out.wait_for("window opened", Duration::from_secs(20)),
        "no window opened:\n{}",
        tray.out.text()
    );
    assert!(
        wait_for(Duration::from_secs(15), || (window_processes(tray.pid) >= 2).then_some(()))
            .is_some(),
        "no window process with WebKit: {:?}",
        proc::descendants(tray.pid)
    );
    assert!(
        wait_for(Duration::from_secs(10), || (dashboards() == 1).then_some(())).is_some(),
        "no dashboard window mapped"
    );
    // The engine runs all the same.
    assert!(app::metrics_ok(ports.metrics), "the engine serves /metrics");
    // No login entry for an app without an icon, and nothing recorded as offered: a later run
    // on a desktop with a tray does its first-run turn-on then.
    assert!(!autostart_file().exists(), "start at login turned on without a tray host");
    assert!(!dirs.data_dir.join("autostart-offered").exists());
    // Said once.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(notifications.shown().len(), 1, "{:?}", notifications.shown());
    assert_eq!(tray.out.count("no tray host on this desktop"), 1, "{}", tray.out.text());

    proc::signal(tray.pid, "TERM");
    let code = tray.wait_exit(Duration::from_secs(20)).and_then(|s| s.code());
    assert_eq!(code, Some(0), "{}", tray.out.text());
}

/// An OTLP/HTTP collector that answers every request with 401, as one does for a wrong token.
fn refusing_collector() -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the collector");
    let addr = listener.local_addr().expect("collector address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            // Reads the whole request first: answering before the body is read can reset the
            // connection, which the client sees as a network error rather than a 401.
            let mut request = Vec::new();
            let mut buf = [0u8; 8192];
            let complete = |r: &[u8]| {
                let Some(end) = r.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
                let head = String::from_utf8_lossy(&r[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                r.len() >= end + 4 + length
            };
            while !complete(&request) {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream.write_all(
                b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    addr
}

/// `cargo run` builds only `tokentray`: without `tokentray-window` next to it, "Open dashboard"
/// says what is missing and how to build it, where the user clicked, and the tray keeps running.
#[test]
fn open_dashboard_without_the_window_program_says_how_to_build_it() {
    if !session::enter("open_dashboard_without_the_window_program_says_how_to_build_it", &[]) {
        return;
    }
    let watcher = Watcher::start();
    let dirs = Dirs::new();
    let alone = tempfile::tempdir().expect("tempdir");
    let copy = alone.path().join("tokentray");
    std::fs::copy(app::bin(), &copy).expect("copy the binary without its window program");
    let mut tray = App::spawn_bin(&copy.to_string_lossy(), &dirs.args(&[]));
    let item = watcher
        .wait_item(0, REGISTER_TIMEOUT)
        .unwrap_or_else(|| panic!("no StatusNotifierItem registered:\n{}", tray.out.text()));
    // After the first refresh of the figures, which would overwrite the info row.
    wait_label(&item, "$0.00", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", tray.out.text()));
    let open = menu_with(&item, "Today: $0.00").find("Open dashboard").expect("Open dashboard").id;
    item.click(open);

    let menu = menu_with(&item, "Cannot open the dashboard");
    let row = &entry(&menu, "Cannot open the dashboard").label;
    assert!(
        row.contains("tokentray-window is missing") && row.contains("cargo build --bins"),
        "says what is missing and how to get it: {row}"
    );
    assert_eq!(window_processes(tray.pid), 0, "no window process");
    assert!(tray.try_status().is_none(), "the tray keeps running:\n{}", tray.out.text());

    quit(&item, &mut tray);
}
