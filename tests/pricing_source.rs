//! The embedded price table (core/src/pricing) against its source, black-box: the same
//! transcript home priced by tokentray (`import`, then `report all --by session --json`) and by
//! the peer tool ccusage 20.0.24 (`ccusage claude session --offline --json`, which prices from
//! the LiteLLM snapshot bundled in its npm package), one session per request so that each
//! session's cost is one request's cost.
//!
//! Per model of the table: a request with known counts of every token kind (input, output, cache
//! read, 5-minute and 1-hour cache writes), the same in fast mode, and 100k tokens of each kind
//! alone; each must cost the same in both to within $0.000001. Long context (above 200k prompt
//! tokens) is compared by rate, not by request cost: tokentray applies a model's long-context
//! rates to the whole request once its prompt is above 200k tokens (Anthropic's rule), ccusage
//! charges only each kind's tokens above 200k at those rates, so one request never costs the same
//! in both. From requests of 1M tokens of one kind, each tool's rate above the threshold is
//! derived and the two must agree.
//!
//! The only allowed skip: ccusage is missing after setup (npm unreachable).
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use support::{tempdir, Checker};
use tokentray_core::pricing::{PriceTable, ADDED_BY_HAND};

const CCUSAGE_VERSION: &str = "20.0.24";
/// USD per request: the agreement the issue asks of the table.
const TOLERANCE: f64 = 0.000_001;
/// The prompt size above which LiteLLM's `*_above_200k_tokens` rates apply.
const LONG_CONTEXT_THRESHOLD: u64 = 200_000;
const LONG: u64 = 1_000_000;
const SHORT: u64 = 100_000;
const KINDS: [&str; 5] = ["input", "output", "cache_read", "cache_write_5m", "cache_write_1h"];
/// Counts of [`KINDS`] in the mixed request, all different so that no two rates can swap unseen.
const MIXED: [u64; 5] = [1234, 567, 8910, 1112, 1314];

fn ccusage_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/.cache/ccusage/node_modules/.bin/ccusage")
}

/// ccusage, or `None` (with the one allowed skip message) when setup could not install it.
fn ccusage_or_skip() -> Option<PathBuf> {
    let bin = ccusage_bin();
    if !bin.exists() {
        println!("skipped: ccusage not installed (run tests/setup.sh)");
        return None;
    }
    let out = Command::new(&bin).arg("--version").stdin(Stdio::null()).output();
    let version = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    assert_eq!(
        version.trim(),
        format!("ccusage {CCUSAGE_VERSION}"),
        "{} --version (re-run tests/setup.sh)",
        bin.display()
    );
    Some(bin)
}

/// One request, in a session of its own.
struct Request {
    session: String,
    model: String,
    /// Counts of [`KINDS`].
    tokens: [u64; 5],
    fast: bool,
}

/// An `assistant` line as Claude Code 2.1.330 writes it (compact JSON, the split of cache writes
/// by lifetime in `usage.cache_creation`), without any `cost-state` line: both tools must price
/// it from their tables.
fn assistant_line(i: usize, r: &Request) -> String {
    let [input, output, cache_read, c5, c1] = r.tokens;
    let speed = if r.fast { "fast" } else { "standard" };
    let (h, m, s) = (10 + i / 3600, (i / 60) % 60, i % 60);
    format!(
        "{{\"parentUuid\":null,\"isSidechain\":false,\"type\":\"assistant\",\"sessionId\":\"{session}\",\
         \"requestId\":\"req_price_{i}\",\"timestamp\":\"2026-12-01T{h:02}:{m:02}:{s:02}.000Z\",\
         \"cwd\":\"/tmp/pricing-source\",\"gitBranch\":\"HEAD\",\"version\":\"2.1.330\",\"userType\":\"external\",\
         \"requestedModel\":\"{model}\",\"uuid\":\"u-price-{i}\",\"message\":{{\"id\":\"msg_price_{i}\",\
         \"type\":\"message\",\"role\":\"assistant\",\"model\":\"{model}\",\"content\":[{{\"type\":\"text\",\"text\":\"ok\"}}],\
         \"stop_reason\":\"end_turn\",\"usage\":{{\"input_tokens\":{input},\"cache_creation_input_tokens\":{cw},\
         \"cache_read_input_tokens\":{cache_read},\"output_tokens\":{output},\"service_tier\":\"standard\",\
         \"speed\":\"{speed}\",\"cache_creation\":{{\"ephemeral_1h_input_tokens\":{c1},\"ephemeral_5m_input_tokens\":{c5}}}}}}}}}\n",
        session = r.session,
        model = r.model,
        cw = c5 + c1,
    )
}

fn one_kind(kind: usize, n: u64) -> [u64; 5] {
    let mut t = [0; 5];
    t[kind] = n;
    t
}

/// The requests of one model, by a label of what they are.
fn requests_of(model: &str, next: &mut usize) -> Vec<(String, Request)> {
    let mut make = |label: String, tokens: [u64; 5], fast: bool| {
        *next += 1;
        let session = format!("00000000-0000-4000-8000-{:012}", *next);
        (label, Request { session, model: model.to_string(), tokens, fast })
    };
    let mut out = vec![make("mixed".into(), MIXED, false), make("mixed, fast".into(), MIXED, true)];
    for (k, kind) in KINDS.iter().enumerate() {
        out.push(make(format!("{kind} {SHORT}"), one_kind(k, SHORT), false));
    }
    for (k, kind) in KINDS.iter().enumerate() {
        // Output alone is no long prompt: give it a long input to take it above the threshold.
        let tokens = if k == 1 { [LONG, LONG, 0, 0, 0] } else { one_kind(k, LONG) };
        out.push(make(format!("{kind} {LONG}"), tokens, false));
    }
    out
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// `ccusage claude session --offline --json` on `home`: cost by session id, and the models
/// it could not price.
fn ccusage_costs(bin: &Path, home: &Path) -> (BTreeMap<String, f64>, BTreeSet<String>) {
    let out = Command::new(bin)
        .args(["claude", "session", "--offline", "--json", "--mode", "calculate", "-z", "UTC"])
        .env("HOME", home)
        .env("CLAUDE_CONFIG_DIR", home.join(".claude"))
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env_remove("CCUSAGE_MODEL_ALIASES")
        .stdin(Stdio::null())
        .output()
        .expect("run ccusage");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ccusage failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("ccusage printed no JSON ({e}):\n{stdout}"));
    let costs = v["sessions"]
        .as_array()
        .expect("ccusage sessions")
        .iter()
        .map(|s| (s["sessionId"].as_str().unwrap_or_default().to_string(), f(&s["totalCost"])))
        .collect();
    let unpriced = v["totals"]["unpricedModels"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    (costs, unpriced)
}

/// `tokentray import` then `report all --by session --json` on `home`: cost by session id.
fn tokentray_costs(dir: &Path, home: &Path) -> BTreeMap<String, f64> {
    let data_dir = dir.join("data");
    let config = dir.join("config.toml");
    let paths = format!("[{:?}]", home.join(".claude").display().to_string());
    std::fs::write(&config, format!("[transcripts]\npaths = {paths}\n")).unwrap();
    let out = support::serve::command(&data_dir, &config)
        .env("HOME", home)
        .arg("import")
        .stdin(Stdio::null())
        .output()
        .expect("run tokentray import");
    assert!(
        out.status.success(),
        "tokentray import failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r = support::serve::report(&data_dir, &config, &["all", "--by", "session", "--json"]);
    r["groups"]
        .as_array()
        .expect("report groups")
        .iter()
        .map(|g| (g["key"].as_str().unwrap_or_default().to_string(), f(&g["cost_usd"])))
        .collect()
}

/// The embedded table's rates agree with ccusage 20.0.24's bundled LiteLLM prices: every model
/// either prices every request the same in both (long context: the same rates above 200k) or is
/// one of [`ADDED_BY_HAND`].
#[test]
fn embedded_prices_agree_with_ccusage_bundled_litellm_prices() {
    let Some(bin) = ccusage_or_skip() else { return };
    let dir = tempdir("tokentray-pricing-source-");
    let home = dir.path().join("home");
    let projects = home.join(".claude/projects/-tmp-pricing-source");
    std::fs::create_dir_all(&projects).unwrap();

    let table = PriceTable::default();
    let models: Vec<String> = table.models("claude-code").map(str::to_string).collect();
    assert!(!models.is_empty(), "the embedded table lists no model");
    let mut next = 0;
    let by_model: BTreeMap<String, Vec<(String, Request)>> =
        models.iter().map(|m| (m.clone(), requests_of(m, &mut next))).collect();
    let mut i = 0;
    for reqs in by_model.values() {
        for (_, r) in reqs {
            i += 1;
            std::fs::write(projects.join(format!("{}.jsonl", r.session)), assistant_line(i, r))
                .unwrap();
        }
    }

    let (cc, cc_unpriced) = ccusage_costs(&bin, &home);
    let tt = tokentray_costs(dir.path(), &home);

    let mut c = Checker::new();
    let mut unknown_to_ccusage = Vec::new();
    let mut long_context_models = Vec::new();
    for (model, reqs) in &by_model {
        let cost = |costs: &BTreeMap<String, f64>, label: &str| -> f64 {
            let r = &reqs.iter().find(|(l, _)| l == label).expect("label").1;
            costs.get(&r.session).copied().unwrap_or(f64::NAN)
        };
        if cc_unpriced.contains(model.as_str()) {
            unknown_to_ccusage.push(model.clone());
            continue;
        }
        for (label, _) in reqs.iter().filter(|(l, _)| !l.ends_with(&format!(" {LONG}"))) {
            let (t, s) = (cost(&tt, label), cost(&cc, label));
            eprintln!("{model:20} {label:24} tokentray {t:>14.9} ccusage {s:>14.9}");
            c.check((t - s).abs() <= TOLERANCE, || {
                format!("{model} {label}: tokentray ${t}, ccusage ${s}")
            });
        }
        // Rates above the threshold, USD per million tokens, kind by kind.
        let long_in_tt = cost(&tt, &format!("input {LONG}"));
        let mut any_long = false;
        for (k, kind) in KINDS.iter().enumerate() {
            let label = format!("{kind} {LONG}");
            let base_cc = cost(&cc, &format!("{kind} {SHORT}")) / SHORT as f64;
            let (mut t, mut s) = (cost(&tt, &label), cost(&cc, &label));
            if k == 1 {
                t -= long_in_tt;
                s -= cost(&cc, &format!("input {LONG}"));
            }
            let rate_tt = t / LONG as f64 * 1e6;
            let flat_cc = (s - base_cc * LONG as f64).abs() <= TOLERANCE;
            let above = (LONG - LONG_CONTEXT_THRESHOLD) as f64;
            let rate_cc = if flat_cc {
                base_cc * 1e6
            } else {
                (s - base_cc * LONG_CONTEXT_THRESHOLD as f64) / above * 1e6
            };
            let base_tt = cost(&tt, &format!("{kind} {SHORT}")) / SHORT as f64 * 1e6;
            any_long |= !flat_cc || (rate_tt - base_tt).abs() > TOLERANCE;
            eprintln!(
                "{model:20} {kind:16} above 200k: tokentray {rate_tt:>10.6}/M ccusage {rate_cc:>10.6}/M{}",
                if flat_cc { " (no long-context rate)" } else { "" }
            );
            c.check((rate_tt - rate_cc).abs() <= TOLERANCE, || {
                format!(
                    "{model} {kind} above {LONG_CONTEXT_THRESHOLD} prompt tokens: tokentray ${rate_tt}/M, \
                     ccusage ${rate_cc}/M{}",
                    if flat_cc { " (ccusage has no long-context rate for it)" } else { "" }
                )
            });
        }
        if any_long {
            long_context_models.push(model.clone());
        }
    }
    eprintln!("models with long-context rates: {long_context_models:?}");
    let not_documented: Vec<&String> =
        unknown_to_ccusage.iter().filter(|m| !ADDED_BY_HAND.contains(&m.as_str())).collect();
    c.check(not_documented.is_empty(), || {
        format!(
            "models of the embedded table ccusage {CCUSAGE_VERSION} does not know, not in \
             pricing::ADDED_BY_HAND: {not_documented:?} (all unknown to it: {unknown_to_ccusage:?})"
        )
    });
    let stale: Vec<&&str> =
        ADDED_BY_HAND.iter().filter(|m| !unknown_to_ccusage.iter().any(|u| u == *m)).collect();
    c.check(stale.is_empty(), || {
        format!(
            "pricing::ADDED_BY_HAND names models ccusage {CCUSAGE_VERSION} knows (compare them, \
             then drop them from the list) or the table lacks: {stale:?}"
        )
    });
    c.check(!long_context_models.is_empty(), || {
        "no model has long-context rates in either tool: the long-context comparison checked \
         nothing"
            .to_string()
    });
    c.assert_ok(&format!(
        "embedded price table vs ccusage {CCUSAGE_VERSION} --offline ({} models; unknown to \
         ccusage: {unknown_to_ccusage:?})",
        models.len()
    ));
}
