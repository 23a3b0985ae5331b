//! Replays the captured exports of Codex CLI 0.169.0 and Gemini CLI 0.61.0
//! (`tests/fixtures/codex/`, `tests/fixtures/gemini-cli/`, copied from `shared/fixtures`) into a
//! real `tokentray serve` over the transports they were recorded on, beside a Claude Code set,
//! and checks `tokentray report all --json` (plain, `--by agent`, `--by model`) against each
//! capture's `expected.json`: tokens exactly, sessions, requests, and spend as tokens × the list
//! prices written below.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use support::fixtures::load_requests;
use support::{eventually, Checker, Replayer, Request, Serve};

/// How long acknowledged data may take to show up in `report`.
const SETTLE: Duration = Duration::from_secs(10);

/// A Claude Code capture replayed alongside: its totals must not change.
const CLAUDE_SET: &str = "http-protobuf-delta";

/// USD per million tokens (uncached input, cached input, output), the list prices of OpenAI and
/// Google as LiteLLM's `model_prices_and_context_window.json` carries them, 2026-12-02
/// (`input_cost_per_token`, `cache_read_input_token_cost`, `output_cost_per_token`). Written
/// here, not read from tokentray's table, so a wrong table fails this test.
const GPT_5_CODEX: (f64, f64, f64) = (1.25, 0.125, 10.0);
const GEMINI_2_5_FLASH: (f64, f64, f64) = (0.30, 0.03, 2.50);
/// Up to 200k prompt tokens (these requests have 1,800).
const GEMINI_2_5_PRO: (f64, f64, f64) = (1.25, 0.125, 10.0);

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn expected(name: &str) -> Value {
    let path = fixture_dir(name).join("expected.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn requests(name: &str) -> Vec<Request> {
    load_requests(&fixture_dir(name))
}

fn claude_requests() -> Vec<Request> {
    load_requests(&fixture_dir("claude-code").join(CLAUDE_SET))
}

fn n(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn cost(
    (input, cached, output): (f64, f64, f64),
    uncached_in: f64,
    cached_in: f64,
    out: f64,
) -> f64 {
    (uncached_in * input + cached_in * cached + out * output) / 1e6
}

/// The figures `report` should show for Codex, from its `expected.json`, and their price.
struct Want {
    input: f64,
    cache_read: f64,
    output: f64,
    reasoning: f64,
    total: f64,
    sessions: f64,
    requests: f64,
    cost_usd: f64,
}

fn codex_want() -> Want {
    let e = expected("codex");
    let t = &e["tokens"];
    let (input, cache_read, output) =
        (n(&t["input_uncached"]), n(&t["input_cached"]), n(&t["output"]));
    Want {
        input,
        cache_read,
        // Reasoning is part of Codex's output: shown beside it, never added to it.
        output,
        reasoning: n(&t["output_reasoning"]),
        total: n(&t["total"]),
        sessions: n(&e["sessions"]),
        requests: n(&e["requests"]),
        cost_usd: cost(GPT_5_CODEX, input, cache_read, output),
    }
}

/// Per Gemini model: `input` includes `cache`; thoughts are billed as output and are not in
/// Gemini's `output` count, so tokentray's output is output + thought, thought shown apart.
fn gemini_want(model: &str) -> Want {
    let e = expected("gemini-cli");
    let m = &e["by_model"][model];
    let (input, cache, output, thought) =
        (n(&m["input"]), n(&m["cache"]), n(&m["output"]), n(&m["thought"]));
    let prices = if model == "gemini-2.5-pro" { GEMINI_2_5_PRO } else { GEMINI_2_5_FLASH };
    Want {
        input: input - cache,
        cache_read: cache,
        output: output + thought,
        reasoning: thought,
        total: input + output + thought,
        sessions: 1.0,
        requests: 1.0,
        cost_usd: cost(prices, input - cache, cache, output + thought),
    }
}

fn gemini_want_all() -> Want {
    let (f, p) = (gemini_want("gemini-2.5-flash"), gemini_want("gemini-2.5-pro"));
    let e = expected("gemini-cli");
    Want {
        input: f.input + p.input,
        cache_read: f.cache_read + p.cache_read,
        output: f.output + p.output,
        reasoning: f.reasoning + p.reasoning,
        total: f.total + p.total,
        sessions: n(&e["sessions"]),
        requests: n(&e["requests"]),
        cost_usd: f.cost_usd + p.cost_usd,
    }
}

/// Checks one report row (or the whole report) against `want`; `with_sessions` is off where
/// sessions are not split that way (by model).
fn check_row(c: &mut Checker, what: &str, row: &Value, want: &Want, with_sessions: bool) {
    let t = &row["tokens"];
    c.num(format!("{what} tokens.input"), n(&t["input"]), want.input);
    c.num(format!("{what} tokens.cacheRead"), n(&t["cacheRead"]), want.cache_read);
    c.num(format!("{what} tokens.cacheCreation"), n(&t["cacheCreation"]), 0.0);
    c.num(format!("{what} tokens.output"), n(&t["output"]), want.output);
    c.num(
        format!("{what} tokens.reasoning"),
        t["reasoning"].as_f64().unwrap_or(0.0),
        want.reasoning,
    );
    c.num(format!("{what} tokens.total"), n(&t["total"]), want.total);
    c.num(format!("{what} cost_usd"), n(&row["cost_usd"]), want.cost_usd);
    let agents = &row["agents"];
    c.num(
        format!("{what} agents.requests"),
        agents["requests"].as_f64().unwrap_or(0.0),
        want.requests,
    );
    c.num(
        format!("{what} agents.cost_usd_price_table"),
        agents["cost_usd_price_table"].as_f64().unwrap_or(0.0),
        want.cost_usd,
    );
    if with_sessions {
        c.num(format!("{what} sessions"), n(&row["sessions"]), want.sessions);
    }
}

fn group<'a>(report: &'a Value, key: &str) -> Option<&'a Value> {
    report["groups"].as_array()?.iter().find(|g| g["key"] == key)
}

/// Spend, tokens and sessions of a Claude Code-only report, to compare with.
fn claude_figures(r: &Value) -> Value {
    serde_json::json!({
        "cost_usd": r["cost_usd"], "tokens": r["tokens"], "sessions": r["sessions"],
        "api_requests": r["api_requests"],
    })
}

#[test]
fn codex_and_gemini_captures_become_spend_tokens_and_sessions() {
    // What Claude Code's set alone reports, to be unchanged beside the other agents.
    let solo = Serve::start();
    Replayer::for_serve(&solo).send_all(&claude_requests());
    let claude_alone = claude_figures(&solo.report(&["all", "--json"]));
    drop(solo);

    let serve = Serve::start();
    let mut replayer = Replayer::for_serve(&serve);
    replayer.send_all(&requests("codex"));
    replayer.send_all(&requests("gemini-cli"));
    replayer.send_all(&claude_requests());

    let (codex, gemini) = (codex_want(), gemini_want_all());
    let c = eventually(SETTLE, || {
        let mut c = Checker::new();
        let by_agent = serve.report(&["all", "--by", "agent", "--json"]);
        let keys: Vec<&str> = by_agent["groups"]
            .as_array()
            .map(|g| g.iter().filter_map(|g| g["key"].as_str()).collect())
            .unwrap_or_default();
        c.check(keys == ["claude-code", "codex", "gemini-cli"], || {
            format!("--by agent rows: {keys:?}")
        });
        match group(&by_agent, "codex") {
            Some(row) => check_row(&mut c, "codex", row, &codex, true),
            None => c.fail("no codex row"),
        }
        match group(&by_agent, "gemini-cli") {
            Some(row) => check_row(&mut c, "gemini-cli", row, &gemini, true),
            None => c.fail("no gemini-cli row"),
        }
        // Their events are named by `event.name`, not by their bodies (sentences with
        // durations, source locations); plain logs without one keep their body.
        for (agent, event) in
            [("codex", "codex.sse_event"), ("gemini-cli", "gemini_cli.api_response")]
        {
            let names: Vec<String> = group(&by_agent, agent)
                .and_then(|g| g["events"].as_object())
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            let by_body = |n: &String| n.contains("otel/src/") || n.contains("Status:");
            c.check(names.iter().any(|n| n == event) && !names.iter().any(by_body), || {
                format!("{agent} event names: {names:?}")
            });
        }
        match group(&by_agent, "claude-code") {
            Some(row) => c.check(claude_figures(row) == claude_alone, || {
                format!("claude-code row {} != alone {claude_alone}", claude_figures(row))
            }),
            None => c.fail("no claude-code row"),
        }
        // The totals hold every agent: Claude Code's plus the two others'.
        let all = serve.report(&["all", "--json"]);
        let alone_tokens = &claude_alone["tokens"];
        for kind in ["input", "output", "cacheRead", "total"] {
            let others = match kind {
                "input" => codex.input + gemini.input,
                "output" => codex.output + gemini.output,
                "cacheRead" => codex.cache_read + gemini.cache_read,
                _ => codex.total + gemini.total,
            };
            c.num(
                format!("total tokens.{kind}"),
                n(&all["tokens"][kind]),
                n(&alone_tokens[kind]) + others,
            );
        }
        c.num(
            "total cost_usd",
            n(&all["cost_usd"]),
            n(&claude_alone["cost_usd"]) + codex.cost_usd + gemini.cost_usd,
        );
        c.num(
            "total sessions",
            n(&all["sessions"]),
            n(&claude_alone["sessions"]) + codex.sessions + gemini.sessions,
        );
        // Per model: each Gemini model's request priced at its own rates.
        let by_model = serve.report(&["all", "--by", "model", "--json"]);
        for model in ["gemini-2.5-flash", "gemini-2.5-pro"] {
            match group(&by_model, model) {
                Some(row) => check_row(&mut c, model, row, &gemini_want(model), false),
                None => c.fail(format!("no {model} row")),
            }
        }
        match group(&by_model, "gpt-5-codex") {
            Some(row) => check_row(&mut c, "gpt-5-codex", row, &codex, false),
            None => c.fail("no gpt-5-codex row"),
        }
        c
    });
    if !c.ok() {
        eprintln!("serve stderr:\n{}", serve.stderr());
    }
    c.assert_ok("Codex + Gemini CLI + Claude Code replay");
    // By session: each agent's own session id, its events beside its requests.
    let by_session = serve.report(&["all", "--by", "session", "--json"]);
    let codex_sessions: Vec<&Value> = by_session["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["events"]["codex.sse_event"].as_u64().is_some())
        .collect();
    assert_eq!(codex_sessions.len(), 3, "{by_session}");
    for g in codex_sessions {
        assert_eq!(g["agents"]["requests"], 1, "one request per codex session: {g}");
        assert_eq!(g["sessions"], 1, "{g}");
    }
    // The table: a row per agent, and what the other agents add.
    let text = serve.cli(&["report", "all", "--by", "agent"]);
    for row in ["claude-code", "codex", "gemini-cli", "Other agents  5 requests, 5 sessions"] {
        assert!(text.contains(row), "report --by agent lacks {row:?}:\n{text}");
    }
}

#[test]
fn a_capture_sent_twice_counts_each_request_once() {
    // Requests are keyed by (agent, record time, session, model, counts): a retried or replayed
    // export stores nothing new.
    let serve = Serve::start();
    let mut replayer = Replayer::for_serve(&serve);
    for _ in 0..2 {
        replayer.send_all(&requests("codex"));
        replayer.send_all(&requests("gemini-cli"));
    }
    let (codex, gemini) = (codex_want(), gemini_want_all());
    let c = eventually(SETTLE, || {
        let mut c = Checker::new();
        let by_agent = serve.report(&["all", "--by", "agent", "--json"]);
        match (group(&by_agent, "codex"), group(&by_agent, "gemini-cli")) {
            (Some(cx), Some(gm)) => {
                check_row(&mut c, "codex", cx, &codex, true);
                check_row(&mut c, "gemini-cli", gm, &gemini, true);
            }
            _ => c.fail(format!("rows missing: {by_agent}")),
        }
        c
    });
    c.assert_ok("each capture sent twice");
}

#[test]
fn no_prompt_text_and_no_unbounded_ids_are_kept() {
    // Forwarding on, to a collector that is not there: what is queued for the team waits in the
    // history file too, and must not hold the prompt either.
    let dir = support::tempdir("tokentray-no-headers-");
    let headers = dir.path().join("headers");
    std::fs::write(&headers, "").unwrap();
    let options =
        support::forward::forwarding_options("http://127.0.0.1:9", "http/protobuf", Some(&headers));
    let serve = Serve::start_with(options);
    let mut replayer = Replayer::for_serve(&serve);
    replayer.send_all(&requests("codex"));
    replayer.send_all(&requests("gemini-cli"));
    let queued = support::forward::status(&serve)["queue"]["requests"].as_u64().unwrap_or(0);
    assert!(queued > 0, "the requests wait in the forwarding queue");
    let metrics = serve.scrape();
    for id in ["conversation_id", "turn_id", "prompt_id", "command_args"] {
        assert!(!metrics.contains(id), "/metrics carries {id}");
    }
    // Gemini CLI's system prompt (in gen_ai.* records) and its `-p` prompt (in the resource's
    // command line) are not in the history file.
    let db = std::fs::read(serve.data_dir.join("tokentray.sqlite3")).unwrap();
    assert!(!db.is_empty());
    let wal = std::fs::read(serve.data_dir.join("tokentray.sqlite3-wal")).unwrap_or_default();
    for text in ["non-interactive CLI agent", "say hi again"] {
        for (name, bytes) in [("database", &db), ("WAL", &wal)] {
            let found = bytes.windows(text.len()).any(|w| w == text.as_bytes());
            assert!(!found, "{name} holds prompt text {text:?}");
        }
    }
}

#[test]
fn a_gemini_session_without_events_counts_from_its_token_metric() {
    // Only the metrics exports arrive (the logs exporter off or failing): the sessions'
    // `gemini_cli.token.usage` (cumulative) is what they cost. Codex's token histogram names no
    // conversation, so Codex metrics alone add nothing.
    let serve = Serve::start();
    let mut replayer = Replayer::for_serve(&serve);
    let metrics_only = |name: &str| {
        requests(name)
            .into_iter()
            .filter(|r| r.signal == support::Signal::Metrics)
            .collect::<Vec<_>>()
    };
    replayer.send_all(&metrics_only("gemini-cli"));
    replayer.send_all(&metrics_only("codex"));
    let gemini = Want { requests: 0.0, ..gemini_want_all() };
    let c = eventually(SETTLE, || {
        let mut c = Checker::new();
        let by_agent = serve.report(&["all", "--by", "agent", "--json"]);
        match group(&by_agent, "gemini-cli") {
            Some(row) => check_row(&mut c, "gemini-cli", row, &gemini, true),
            None => c.fail(format!("no gemini-cli row: {by_agent}")),
        }
        if let Some(row) = group(&by_agent, "codex") {
            c.num("codex tokens.total from metrics alone", n(&row["tokens"]["total"]), 0.0);
            c.num("codex cost_usd from metrics alone", n(&row["cost_usd"]), 0.0);
        }
        let by_model = serve.report(&["all", "--by", "model", "--json"]);
        for model in ["gemini-2.5-flash", "gemini-2.5-pro"] {
            let want = Want { requests: 0.0, ..gemini_want(model) };
            match group(&by_model, model) {
                Some(row) => check_row(&mut c, model, row, &want, false),
                None => c.fail(format!("no {model} row")),
            }
        }
        c
    });
    c.assert_ok("Gemini CLI metrics without events");
}
