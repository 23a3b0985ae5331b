//! Prices per token, keyed by (agent, model), for requests no Claude Code cost covers.
//!
//! Claude Code's own cost (telemetry's `claude_code.cost.usage`, a transcript's `cost-state`)
//! always wins; this table prices only what neither stated, e.g. a session still running with
//! telemetry off. The embedded table is Anthropic's list prices as LiteLLM's
//! `model_prices_and_context_window.json` carries them, in the snapshot ccusage 20.0.24 bundles
//! for `--offline` ([`TABLE_SOURCE`], [`TABLE_DATE`]); tests/pricing_source.rs checks every entry
//! against that ccusage. `[pricing]` in the config overrides a model or adds one. A model found in neither is *unpriced*: its tokens
//! count, its cost is reported as unknown, never as a silent $0.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The date the embedded table was checked against its source (ccusage 20.0.24, published
/// 2026-09-22, whose bundled LiteLLM snapshot is at most that old).
pub const TABLE_DATE: &str = "2026-12-02";
/// Where the embedded table comes from.
pub const TABLE_SOURCE: &str = "Anthropic list prices as in BerriAI/litellm \
    model_prices_and_context_window.json, the snapshot bundled in npm ccusage@20.0.24 (--offline)";
/// Models of the embedded table that [`TABLE_SOURCE`] does not carry, their rates typed in by
/// hand from Anthropic's pricing page; tests/pricing_source.rs accepts only these as unknown to
/// the source.
pub const ADDED_BY_HAND: &[&str] = &[];

/// The agent whose transcripts tokentray reads; other agents have their own keys
/// (`ingest::agents`: `codex`, `gemini-cli`).
pub(crate) const CLAUDE_CODE: &str = "claude-code";

/// USD per million tokens of each kind, for one model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Uncached input tokens.
    pub input: f64,
    /// Output tokens.
    pub output: f64,
    /// Cache reads.
    pub cache_read: f64,
    /// Cache writes with the default 5-minute lifetime.
    pub cache_write_5m: f64,
    /// Cache writes with the 1-hour lifetime.
    pub cache_write_1h: f64,
    /// Above this many prompt tokens (input + cache read + cache writes) in one request, the
    /// long-context rates apply to the whole request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_context_threshold: Option<u64>,
    /// The rates above `long_context_threshold`; `None` when the model has no long-context
    /// pricing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_context: Option<LongContext>,
    /// Multiplier of every rate for requests served in fast mode (`usage.speed = "fast"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast_multiplier: Option<f64>,
}

/// Rates above [`ModelPrice::long_context_threshold`], USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongContext {
    /// Uncached input tokens.
    pub input: f64,
    /// Output tokens.
    pub output: f64,
    /// Cache reads.
    pub cache_read: f64,
    /// Cache writes with the default 5-minute lifetime.
    pub cache_write_5m: f64,
    /// Cache writes with the 1-hour lifetime.
    pub cache_write_1h: f64,
}

/// The token counts of one request that a price applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Uncached input tokens.
    pub input: u64,
    /// Output tokens.
    pub output: u64,
    /// Tokens read from the prompt cache.
    pub cache_read: u64,
    /// Tokens written to the cache with the 5-minute lifetime.
    pub cache_write_5m: u64,
    /// Tokens written to the cache with the 1-hour lifetime.
    pub cache_write_1h: u64,
    /// Served in fast mode (`usage.speed = "fast"`): rates get the model's `fast_multiplier`.
    pub fast: bool,
}

/// `[pricing]` in the config: `[pricing.models."claude-foo"]` with the rates of [`ModelPrice`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PricingConfig {
    /// Rates by model name as Claude Code writes it; replaces an embedded entry or adds one.
    pub models: BTreeMap<String, ModelPrice>,
}

/// The table [`PriceTable::configure`] set for this process.
static CONFIGURED: std::sync::RwLock<Option<PriceTable>> = std::sync::RwLock::new(None);

/// The embedded table plus the config's overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceTable {
    prices: BTreeMap<(String, String), ModelPrice>,
}

impl Default for PriceTable {
    fn default() -> Self {
        PriceTable::embedded()
    }
}

const fn flat(input: f64, output: f64) -> ModelPrice {
    // Anthropic's cache rates: read 0.1×, 5-minute write 1.25×, 1-hour write 2× the input rate.
    ModelPrice {
        input,
        output,
        cache_read: input * 0.1,
        cache_write_5m: input * 1.25,
        cache_write_1h: input * 2.0,
        long_context_threshold: None,
        long_context: None,
        fast_multiplier: None,
    }
}

const fn with_long_context(p: ModelPrice) -> ModelPrice {
    // Sonnet 4 / 4.5 with the 1M context: above 200k prompt tokens, input ×2 and output ×1.5.
    ModelPrice {
        long_context_threshold: Some(200_000),
        long_context: Some(LongContext {
            input: p.input * 2.0,
            output: p.output * 1.5,
            cache_read: p.cache_read * 2.0,
            cache_write_5m: p.cache_write_5m * 2.0,
            cache_write_1h: p.cache_write_1h * 2.0,
        }),
        ..p
    }
}

const fn with_fast(p: ModelPrice, multiplier: f64) -> ModelPrice {
    ModelPrice { fast_multiplier: Some(multiplier), ..p }
}

/// Model names as Claude Code writes them (`message.model`); dated ids resolve to these by
/// prefix (`claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`).
const EMBEDDED: &[(&str, ModelPrice)] = &[
    ("claude-opus-4-8", with_fast(flat(5.0, 25.0), 2.0)),
    ("claude-opus-4-7", with_fast(flat(5.0, 25.0), 6.0)),
    ("claude-opus-4-6", with_fast(flat(5.0, 25.0), 6.0)),
    ("claude-opus-4-5", flat(5.0, 25.0)),
    ("claude-opus-4-1", flat(15.0, 75.0)),
    ("claude-opus-4", flat(15.0, 75.0)),
    // 1M context at the standard rates: the source has no above-200k rates for Sonnet 4.6.
    ("claude-sonnet-4-6", flat(3.0, 15.0)),
    ("claude-sonnet-4-5", with_long_context(flat(3.0, 15.0))),
    ("claude-sonnet-4", with_long_context(flat(3.0, 15.0))),
    ("claude-3-7-sonnet", flat(3.0, 15.0)),
    ("claude-3-5-sonnet", flat(3.0, 15.0)),
    ("claude-haiku-4-5", flat(1.0, 5.0)),
    ("claude-3-5-haiku", flat(0.8, 4.0)),
    // Haiku 3's cache rates are not the usual multiples of its input rate.
    (
        "claude-3-haiku",
        ModelPrice {
            cache_read: 0.03,
            cache_write_5m: 0.3,
            cache_write_1h: 0.5,
            ..flat(0.25, 1.25)
        },
    ),
    ("claude-3-opus", flat(15.0, 75.0)),
];

/// A provider whose cached input is simply cheaper input: no cache-write surcharge (writes,
/// if any are reported, cost the input rate).
const fn cached_at(input: f64, output: f64, cache_read: f64) -> ModelPrice {
    ModelPrice {
        input,
        output,
        cache_read,
        cache_write_5m: input,
        cache_write_1h: input,
        long_context_threshold: None,
        long_context: None,
        fast_multiplier: None,
    }
}

/// Other agents' models, USD per million tokens, from LiteLLM's
/// `model_prices_and_context_window.json` (`input_cost_per_token`, `output_cost_per_token`,
/// `cache_read_input_token_cost` and their `_above_200k_tokens` variants), transcribed
/// 2026-12-02 ([`TABLE_DATE`]; checked again that day against BerriAI/litellm at commit
/// 00035b69f416: `gpt-5-codex`, `gemini/gemini-2.5-flash`, `gemini/gemini-2.5-pro`); the same as
/// OpenAI's and Google's published list prices:
/// * codex / gpt-5-codex: input 1.25, cached input 0.125, output 10 (reasoning is output);
/// * gemini-cli / gemini-2.5-flash: input 0.30, cached input 0.03, output 2.50 (thinking is
///   output);
/// * gemini-cli / gemini-2.5-pro: up to 200k prompt tokens input 1.25, cached 0.125, output 10;
///   above, for the whole request, input 2.50, cached 0.25, output 15.
const OTHER_AGENTS: &[(&str, &str, ModelPrice)] = &[
    ("codex", "gpt-5-codex", cached_at(1.25, 10.0, 0.125)),
    ("gemini-cli", "gemini-2.5-flash", cached_at(0.30, 2.50, 0.03)),
    (
        "gemini-cli",
        "gemini-2.5-pro",
        ModelPrice {
            long_context_threshold: Some(200_000),
            long_context: Some(LongContext {
                input: 2.50,
                output: 15.0,
                cache_read: 0.25,
                cache_write_5m: 2.50,
                cache_write_1h: 2.50,
            }),
            ..cached_at(1.25, 10.0, 0.125)
        },
    ),
];

impl PriceTable {
    /// The table built into this binary.
    pub(crate) fn embedded() -> PriceTable {
        let claude_code = EMBEDDED
            .iter()
            .map(|(model, price)| ((CLAUDE_CODE.to_string(), model.to_string()), *price));
        let others = OTHER_AGENTS
            .iter()
            .map(|(agent, model, price)| ((agent.to_string(), model.to_string()), *price));
        PriceTable { prices: claude_code.chain(others).collect() }
    }

    /// The model names `agent` has a price for, in name order.
    pub fn models<'a>(&'a self, agent: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.prices.keys().filter(move |(a, _)| a == agent).map(|(_, m)| m.as_str())
    }

    /// Makes the config's `[pricing]` this process's table: every [`Reader`] opened from now
    /// on prices with it (report, statusline, budgets, the dashboard of `serve` and the tray),
    /// so no view can forget the overrides. Called where the config is loaded.
    ///
    /// [`Reader`]: crate::store::Reader
    pub fn configure(config: &PricingConfig) {
        let table = PriceTable::with_overrides(config);
        match CONFIGURED.write() {
            Ok(mut slot) => *slot = Some(table),
            Err(poisoned) => *poisoned.into_inner() = Some(table),
        }
    }

    /// This process's table: the embedded one plus the overrides [`PriceTable::configure`]
    /// was given (the embedded one alone before it was called).
    pub fn configured() -> PriceTable {
        let slot = match CONFIGURED.read() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        slot.clone().unwrap_or_else(PriceTable::embedded)
    }

    /// The embedded table with the config's models replacing or adding to it.
    pub fn with_overrides(config: &PricingConfig) -> PriceTable {
        let mut table = PriceTable::embedded();
        for (model, price) in &config.models {
            table.prices.insert((CLAUDE_CODE.to_string(), model.clone()), *price);
        }
        table
    }

    /// The price of `model` for `agent`: an exact entry, else the longest entry that is a
    /// prefix of it followed by `-` (a dated or suffixed id such as `…-20250929` or `…[1m]`).
    pub fn price(&self, agent: &str, model: &str) -> Option<&ModelPrice> {
        let key = (agent.to_string(), model.to_string());
        if let Some(p) = self.prices.get(&key) {
            return Some(p);
        }
        self.prices
            .iter()
            .filter(|((a, m), _)| {
                a == agent
                    && model.len() > m.len()
                    && model.starts_with(m.as_str())
                    && matches!(model.as_bytes()[m.len()], b'-' | b'[' | b'@')
            })
            .max_by_key(|((_, m), _)| m.len())
            .map(|(_, p)| p)
    }

    /// USD for one request, or `None` when the model has no price.
    pub fn cost(&self, agent: &str, model: &str, usage: &Usage) -> Option<f64> {
        self.price(agent, model).map(|p| p.cost(usage))
    }
}

impl ModelPrice {
    /// USD for one request at these rates.
    pub fn cost(&self, u: &Usage) -> f64 {
        let prompt = u.input + u.cache_read + u.cache_write_5m + u.cache_write_1h;
        let long = self.long_context_threshold.is_some_and(|t| prompt > t);
        self.cost_of_class(u, long)
    }

    /// USD for requests (`u` may be the sums of several) that are all above the long-context
    /// threshold (`long`) or all below it: the price is linear within each side.
    pub(crate) fn cost_of_class(&self, u: &Usage, long: bool) -> f64 {
        let rates = match (long, self.long_context) {
            (true, Some(l)) => l,
            _ => LongContext {
                input: self.input,
                output: self.output,
                cache_read: self.cache_read,
                cache_write_5m: self.cache_write_5m,
                cache_write_1h: self.cache_write_1h,
            },
        };
        let per_million = u.input as f64 * rates.input
            + u.output as f64 * rates.output
            + u.cache_read as f64 * rates.cache_read
            + u.cache_write_5m as f64 * rates.cache_write_5m
            + u.cache_write_1h as f64 * rates.cache_write_1h;
        let fast = if u.fast { self.fast_multiplier.unwrap_or(1.0) } else { 1.0 };
        per_million * fast / 1_000_000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_a_request_like_claude_code_does() {
        // Session c370a214 of the captured transcripts: Claude Code's cost-state says 0.0068664.
        let table = PriceTable::embedded();
        let u = Usage {
            input: 1234,
            output: 42,
            cache_read: 2048,
            cache_write_5m: 512,
            ..Default::default()
        };
        let cost = table.cost(CLAUDE_CODE, "claude-sonnet-4-5", &u).expect("priced");
        assert!((cost - 0.0068664).abs() < 1e-12, "{cost}");
        let dated = table.cost(CLAUDE_CODE, "claude-sonnet-4-5-20250929", &u).expect("priced");
        assert_eq!(dated, cost);
        assert_eq!(table.cost(CLAUDE_CODE, "claude-opus-5-5", &u), None);
        assert_eq!(table.cost("other-agent", "claude-sonnet-4-5", &u), None);
    }

    #[test]
    fn other_agents_are_priced_under_their_own_keys() {
        let table = PriceTable::embedded();
        let u = Usage {
            input: 1_000_000,
            cache_read: 1_000_000,
            output: 1_000_000,
            ..Default::default()
        };
        assert_eq!(table.cost("codex", "gpt-5-codex", &u), Some(1.25 + 0.125 + 10.0));
        assert_eq!(table.cost(CLAUDE_CODE, "gpt-5-codex", &u), None, "keyed by agent too");
        let flash = table.cost("gemini-cli", "gemini-2.5-flash", &u).expect("priced");
        assert!((flash - (0.30 + 0.03 + 2.50)).abs() < 1e-12, "{flash}");
        // Gemini 2.5 Pro: above 200k prompt tokens the whole request takes the higher rates.
        let small =
            Usage { input: 150_000, cache_read: 50_000, output: 1000, ..Default::default() };
        let big = Usage { input: 150_000, cache_read: 50_001, output: 1000, ..Default::default() };
        let at = |u: &Usage| table.cost("gemini-cli", "gemini-2.5-pro", u).expect("priced");
        assert!(
            (at(&small) - (150_000.0 * 1.25 + 50_000.0 * 0.125 + 1000.0 * 10.0) / 1e6).abs()
                < 1e-12
        );
        assert!(
            (at(&big) - (150_000.0 * 2.5 + 50_001.0 * 0.25 + 1000.0 * 15.0) / 1e6).abs() < 1e-12
        );
    }

    #[test]
    fn long_context_fast_mode_and_overrides() {
        let table = PriceTable::embedded();
        let long = Usage { input: 250_000, output: 1000, ..Default::default() };
        let cost = table.cost(CLAUDE_CODE, "claude-sonnet-4-5", &long).expect("priced");
        assert!((cost - (250_000.0 * 6.0 + 1000.0 * 22.5) / 1e6).abs() < 1e-12);
        // Sonnet 4.6 keeps its standard rates at any length (the source has no long-context tier).
        let flat_long = table.cost(CLAUDE_CODE, "claude-sonnet-4-6", &long).expect("priced");
        assert!((flat_long - (250_000.0 * 3.0 + 1000.0 * 15.0) / 1e6).abs() < 1e-12);
        let haiku3 = table.price(CLAUDE_CODE, "claude-3-haiku-20240307").expect("priced");
        assert_eq!(
            (haiku3.cache_read, haiku3.cache_write_5m, haiku3.cache_write_1h),
            (0.03, 0.3, 0.5)
        );
        let fast = Usage { input: 1_000_000, fast: true, ..Default::default() };
        assert_eq!(table.cost(CLAUDE_CODE, "claude-opus-4-6", &fast), Some(30.0));
        let config: PricingConfig = toml::from_str(
            "[models.claude-opus-5-5]\ninput = 10\noutput = 50\ncache_read = 1\ncache_write_5m = 12.5\ncache_write_1h = 20\n",
        )
        .expect("toml");
        let table = PriceTable::with_overrides(&config);
        let one = Usage { output: 1_000_000, ..Default::default() };
        assert_eq!(table.cost(CLAUDE_CODE, "claude-opus-5-5", &one), Some(50.0));
    }
}
