//! `tokentray budget set` / `unset`: edits `[budgets]` in the TOML config file with
//! `toml_edit`, so the user's comments, ordering and other keys stay as they were.
//!
//! A limit with the default thresholds is written in its short form (`daily = 20`), otherwise as
//! an inline table (`daily = { limit_usd = 20, thresholds = [80, 100] }`); a budget the user
//! wrote as a `[budgets.daily]` table is updated in place. The result is checked to be a valid
//! config before the file is replaced (atomically, by rename).

use std::path::Path;

use toml_edit::{DocumentMut, InlineTable, Item, Table, TableLike, Value};

use super::{BudgetError, BudgetPeriod};
use crate::config::{BudgetLimit, Config, DEFAULT_THRESHOLDS};

/// Whose spend a budget limits, as `budget set` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Every agent's and model's spend together: `[budgets]`.
    All,
    /// One model's: `[budgets.models.<model>]`.
    Model(&'a str),
    /// One agent's (`claude-code`, `codex`, `gemini-cli`): `[budgets.agents.<agent>]`.
    Agent(&'a str),
}

impl<'a> Scope<'a> {
    /// The scope of `--model` / `--agent` (at most one of them is given).
    pub fn of(model: Option<&'a str>, agent: Option<&'a str>) -> Scope<'a> {
        match (model, agent) {
            (Some(m), _) => Scope::Model(m),
            (None, Some(a)) => Scope::Agent(a),
            (None, None) => Scope::All,
        }
    }

    /// The sub-table of `[budgets]` and the key in it, for one model or agent.
    fn table(self) -> Option<(&'static str, &'a str)> {
        match self {
            Scope::All => None,
            Scope::Model(m) => Some(("models", m)),
            Scope::Agent(a) => Some(("agents", a)),
        }
    }
}

/// Sets one budget: `period` for all spend, one model's or one agent's.
pub fn set_budget(
    path: &Path,
    period: BudgetPeriod,
    scope: Scope<'_>,
    limit: &BudgetLimit,
) -> Result<(), BudgetError> {
    edit(path, |doc| {
        let target = budget_table(doc, scope, true)?
            .ok_or_else(|| BudgetError::Invalid("internal: no budgets table".into()))?;
        set_limit(target, period.name(), limit);
        Ok(())
    })
}

/// Removes one budget; tells whether there was one.
pub fn unset_budget(
    path: &Path,
    period: BudgetPeriod,
    scope: Scope<'_>,
) -> Result<bool, BudgetError> {
    if !path.exists() {
        return Ok(false);
    }
    edit(path, |doc| {
        let Some(target) = budget_table(doc, scope, false)? else { return Ok(false) };
        let removed = target.remove(period.name()).is_some();
        if let Some((group, m)) = scope.table() {
            // Leave no empty `[budgets.models.<m>]` (or `agents`) behind.
            if let Some(members) = doc
                .get_mut("budgets")
                .and_then(|b| b.get_mut(group))
                .and_then(Item::as_table_like_mut)
            {
                if members.get(m).and_then(Item::as_table_like).is_some_and(|t| t.is_empty()) {
                    members.remove(m);
                }
                if members.is_empty() {
                    if let Some(b) = doc.get_mut("budgets").and_then(Item::as_table_like_mut) {
                        b.remove(group);
                    }
                }
            }
        }
        Ok(removed)
    })
}

fn edit<T>(
    path: &Path,
    change: impl FnOnce(&mut DocumentMut) -> Result<T, BudgetError>,
) -> Result<T, BudgetError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(BudgetError::ReadConfig { path: path.into(), reason: e.to_string() }),
    };
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        BudgetError::InvalidConfig { path: path.into(), reason: e.to_string() }
    })?;
    let out = change(&mut doc)?;
    let new_text = doc.to_string();
    // Refuse to write a file tokentray itself would then refuse to start with.
    toml::from_str::<Config>(&new_text)
        .map_err(|e| BudgetError::InvalidConfig { path: path.into(), reason: e.to_string() })?;
    if new_text != text {
        write_atomically(path, &new_text)?;
    }
    Ok(out)
}

fn write_atomically(path: &Path, text: &str) -> Result<(), BudgetError> {
    crate::fsutil::write_atomic(path, text)
        .map_err(|e| BudgetError::WriteConfig { path: path.into(), reason: e.to_string() })
}

/// `[budgets]`, `[budgets.models.<model>]` or `[budgets.agents.<agent>]`, created when
/// `create` (as implicit tables where only a header would be noise).
fn budget_table<'a>(
    doc: &'a mut DocumentMut,
    scope: Scope<'_>,
    create: bool,
) -> Result<Option<&'a mut dyn TableLike>, BudgetError> {
    // Only a header when it holds limits itself: `[budgets.agents.codex]` alone needs none.
    let implicit = scope.table().is_some();
    let Some(budgets) = child(doc.as_table_mut(), "budgets", create, implicit)? else {
        return Ok(None);
    };
    match scope.table() {
        None => Ok(Some(budgets)),
        Some((group, m)) => {
            let Some(members) = child(budgets, group, create, true)? else { return Ok(None) };
            child(members, m, create, false)
        }
    }
}

fn child<'a>(
    parent: &'a mut dyn TableLike,
    key: &str,
    create: bool,
    implicit: bool,
) -> Result<Option<&'a mut dyn TableLike>, BudgetError> {
    if !parent.contains_key(key) {
        if !create {
            return Ok(None);
        }
        // Into an inline parent (`budgets = { … }`) toml_edit converts this to an inline table.
        let mut t = Table::new();
        t.set_implicit(implicit);
        let item = Item::Table(t);
        parent.insert(key, item);
    }
    match parent.get_mut(key).and_then(Item::as_table_like_mut) {
        Some(t) => Ok(Some(t)),
        None => Err(BudgetError::Invalid(format!(
            "'{key}' in the config file is not a table; fix it by hand first"
        ))),
    }
}

fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        Value::from(v as i64)
    } else {
        Value::from(v)
    }
}

fn thresholds_value(t: &[u32]) -> Value {
    Value::Array(t.iter().map(|&p| i64::from(p)).collect())
}

/// Sets `key` keeping the key's own formatting (a comment above it lives there) and the old
/// value's trailing comment.
fn replace_value(table: &mut dyn TableLike, key: &str, mut value: Value) {
    match table.get_mut(key) {
        Some(item) => {
            if let Some(old) = item.as_value() {
                *value.decor_mut() = old.decor().clone();
            }
            *item = Item::Value(value);
        }
        None => {
            table.insert(key, Item::Value(value));
        }
    }
}

fn set_limit(target: &mut dyn TableLike, key: &str, limit: &BudgetLimit) {
    let default_thresholds = limit.thresholds == DEFAULT_THRESHOLDS;
    if let Some(existing) = target.get_mut(key).and_then(Item::as_table_like_mut) {
        // `[budgets.daily]` or `daily = { … }`: update the keys, keep the rest of its formatting.
        replace_value(existing, "limit_usd", number(limit.limit_usd));
        if default_thresholds && !existing.contains_key("thresholds") {
            return;
        }
        replace_value(existing, "thresholds", thresholds_value(&limit.thresholds));
        return;
    }
    let value = if default_thresholds {
        number(limit.limit_usd)
    } else {
        let mut t = InlineTable::new();
        t.insert("limit_usd", number(limit.limit_usd));
        t.insert("thresholds", thresholds_value(&limit.thresholds));
        Value::InlineTable(t)
    };
    // Keeps a comment written after the old value (`daily = 20  # team agreement`).
    replace_value(target, key, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(usd: f64, t: &[u32]) -> BudgetLimit {
        BudgetLimit::new(usd, t).expect("valid")
    }

    #[test]
    fn set_and_unset_keep_everything_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join("config.toml");
        set_budget(&path, BudgetPeriod::Daily, Scope::All, &limit(20.0, &[]))
            .expect("set on a missing file");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "[budgets]\ndaily = 20\n");

        let original = "# my settings\n[listen]\nmetrics = \"127.0.0.1:9999\"  # keep me\n\n[budgets]\nweek_start = \"sunday\"\ndaily = 5  # agreed with finance\n";
        std::fs::write(&path, original).expect("write");
        set_budget(&path, BudgetPeriod::Daily, Scope::All, &limit(12.5, &[])).expect("set");
        set_budget(&path, BudgetPeriod::Monthly, Scope::All, &limit(300.0, &[100, 80]))
            .expect("set");
        set_budget(&path, BudgetPeriod::Daily, Scope::Model("claude-opus-5-5"), &limit(10.0, &[]))
            .expect("set model");
        set_budget(&path, BudgetPeriod::Weekly, Scope::Model("claude.sonnet"), &limit(7.0, &[90]))
            .expect("set dotted model");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            text.starts_with("# my settings\n[listen]\nmetrics = \"127.0.0.1:9999\"  # keep me\n"),
            "{text}"
        );
        assert!(text.contains("daily = 12.5  # agreed with finance\n"), "{text}");
        assert!(text.contains("monthly = { limit_usd = 300, thresholds = [80, 100] }"), "{text}");
        assert!(text.contains("[budgets.models.claude-opus-5-5]\ndaily = 10\n"), "{text}");
        assert!(!text.contains("[budgets.models]\n"), "implicit parent table: {text}");
        let c = Config::from_file(&path).expect("valid");
        assert_eq!(c.listen.metrics, "127.0.0.1:9999");
        assert_eq!(c.budgets.week_start.to_string(), "sunday");
        assert_eq!(c.budgets.daily.as_ref().map(|b| b.limit_usd), Some(12.5));
        assert_eq!(c.budgets.monthly.as_ref().map(|b| b.thresholds.clone()), Some(vec![80, 100]));
        assert_eq!(
            c.budgets.models["claude.sonnet"].weekly.as_ref().map(|b| b.thresholds.clone()),
            Some(vec![90])
        );

        assert!(unset_budget(&path, BudgetPeriod::Daily, Scope::Model("claude-opus-5-5"))
            .expect("unset"));
        assert!(!unset_budget(&path, BudgetPeriod::Daily, Scope::Model("claude-opus-5-5"))
            .expect("unset again"));
        assert!(unset_budget(&path, BudgetPeriod::Weekly, Scope::Model("claude.sonnet"))
            .expect("unset"));
        assert!(unset_budget(&path, BudgetPeriod::Monthly, Scope::All).expect("unset"));
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(!text.contains("models"), "{text}");
        assert!(!text.contains("monthly"), "{text}");
        assert!(text.contains("daily = 12.5  # agreed with finance"), "{text}");
        assert!(text.contains("metrics = \"127.0.0.1:9999\"  # keep me"), "{text}");
    }

    #[test]
    fn table_form_is_updated_in_place_and_bad_files_are_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[budgets.daily]\n# the team's limit\nlimit_usd = 20\n")
            .expect("write");
        set_budget(&path, BudgetPeriod::Daily, Scope::All, &limit(25.0, &[90])).expect("set");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(
            text,
            "[budgets.daily]\n# the team's limit\nlimit_usd = 25\nthresholds = [90]\n"
        );

        let broken = "[listen]\nmetricz = 1\n";
        std::fs::write(&path, broken).expect("write");
        let err = set_budget(&path, BudgetPeriod::Daily, Scope::All, &limit(5.0, &[]))
            .expect_err("invalid config");
        assert!(err.to_string().contains("metricz"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), broken, "not rewritten");
    }
}
