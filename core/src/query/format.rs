//! Amounts and counts as people read them, shared by `tokentray report`, `budget status`, the
//! statusline, the tray label, the alert texts and the window, so that every place writes the
//! same amount alike: `$3.42` in an English locale, `3,42 $` in a German one.
//!
//! Money follows the user's locale (`LC_ALL`, `LC_MONETARY`, `LANG`) through [`MoneyStyle`], a
//! small table of common locales (decimal sign, digit grouping, where the `$` goes); any other
//! locale, and the C locale, read as en-US. The window formats its amounts with the same style
//! (it asks the tray for it), so the tray and the window never disagree. JSON and CSV keep
//! machine figures (`3.42`), whatever the locale.

use std::sync::OnceLock;

use serde::Serialize;

/// How a locale writes an amount of US dollars: `$1,234.56` (en-US), `1.234,56 $` (de-DE),
/// `1 234,56 $` (fr-FR), `$ 1.234,56` (nl-NL). Serialised for the window as
/// `{"decimal": ",", "group": ".", "symbol_first": false, "space": true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MoneyStyle {
    /// The decimal sign.
    pub decimal: char,
    /// What separates groups of three digits.
    pub group: char,
    /// Whether the `$` comes before the number.
    pub symbol_first: bool,
    /// Whether a no-break space stands between the `$` and the number.
    pub space: bool,
}

const NO_BREAK_SPACE: char = '\u{a0}';
const NARROW_NO_BREAK_SPACE: char = '\u{202f}';

impl MoneyStyle {
    /// en-US: `$1,234.56`.
    pub const EN_US: MoneyStyle =
        MoneyStyle { decimal: '.', group: ',', symbol_first: true, space: false };

    /// The style of the user's locale (see [`user_locale`]), read once per process. The core's
    /// own unit tests always get en-US, so that they do not depend on the machine's locale.
    pub fn user() -> MoneyStyle {
        static USER: OnceLock<MoneyStyle> = OnceLock::new();
        if cfg!(test) {
            return MoneyStyle::EN_US;
        }
        *USER.get_or_init(|| MoneyStyle::of_locale(user_locale().as_deref().unwrap_or("en-US")))
    }

    /// The style of a BCP 47 locale (`de-DE`, `fr`, `pt-BR`); en-US for locales not in the table.
    pub fn of_locale(tag: &str) -> MoneyStyle {
        let mut parts = tag.split(['-', '_']);
        let language = parts.next().unwrap_or("").to_ascii_lowercase();
        let region = parts.find(|p| p.len() == 2).unwrap_or("").to_ascii_uppercase();
        let style = |decimal, group, symbol_first, space| MoneyStyle {
            decimal,
            group,
            symbol_first,
            space,
        };
        match (language.as_str(), region.as_str()) {
            ("de", "CH" | "LI") => style('.', '\u{2019}', true, true),
            ("de", "AT") | ("nl" | "pt", _) if region != "PT" => style(',', '.', true, true),
            ("pt", _) => style(',', NO_BREAK_SPACE, false, true),
            ("es", "MX" | "US" | "419") => MoneyStyle::EN_US,
            ("tr" | "id", _) => style(',', '.', true, false),
            ("de" | "es" | "it" | "da" | "el" | "ca" | "ro" | "hr" | "sl" | "sr" | "vi", _) => {
                style(',', '.', false, true)
            }
            ("fr", _) => style(',', NARROW_NO_BREAK_SPACE, false, true),
            (
                "ru" | "pl" | "cs" | "sk" | "sv" | "fi" | "nb" | "nn" | "no" | "uk" | "hu" | "bg"
                | "lt" | "lv" | "et",
                _,
            ) => style(',', NO_BREAK_SPACE, false, true),
            _ => MoneyStyle::EN_US,
        }
    }

    /// Dollars: cents, or four decimals below one cent (`$0.0040`), so small sessions are not
    /// `$0.00`.
    pub fn usd(&self, v: f64) -> String {
        let digits = if v != 0.0 && v.abs() < 0.01 { 4 } else { 2 };
        self.amount(v, digits)
    }

    /// Dollars without cents when whole: `$20`, `$12.50` (limits in sentences and the tray).
    pub fn usd_short(&self, v: f64) -> String {
        if (v - v.round()).abs() < 0.005 {
            self.amount(v.round(), 0)
        } else {
            self.amount(v, 2)
        }
    }

    /// `v` with `digits` decimals, its digits grouped by three and the `$` where the locale
    /// puts it; a minus sign leads.
    fn amount(&self, v: f64, digits: usize) -> String {
        let plain = format!("{:.digits$}", v.abs());
        let (whole, fraction) = plain.split_once('.').unwrap_or((plain.as_str(), ""));
        let mut number = String::with_capacity(plain.len() + 8);
        for (i, c) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i) % 3 == 0 {
                number.push(self.group);
            }
            number.push(c);
        }
        if !fraction.is_empty() {
            number.push(self.decimal);
            number.push_str(fraction);
        }
        let gap = if self.space { NO_BREAK_SPACE.to_string() } else { String::new() };
        let sign = if v < 0.0 && plain.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
            "-"
        } else {
            ""
        };
        if self.symbol_first {
            format!("{sign}${gap}{number}")
        } else {
            format!("{sign}{number}{gap}$")
        }
    }
}

/// Dollars in the user's locale: cents, or four decimals below one cent (`$0.0040`), so small
/// sessions are not `$0.00`.
pub fn usd(v: f64) -> String {
    MoneyStyle::user().usd(v)
}

/// Dollars in the user's locale without cents when whole: `$20`, `$12.50` (limits in sentences
/// and the tray).
pub fn usd_short(v: f64) -> String {
    MoneyStyle::user().usd_short(v)
}

/// Counts: 950, 1.2k, 3.4M, 1.0B.
pub fn count(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}B", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// The user's locale as a BCP 47 tag (`de-DE`), from the first of `LC_ALL`, `LC_MONETARY` and
/// `LANG` that is set, as the C library would choose it for money; `None` for `C` / `POSIX`.
/// The window formats its amounts, numbers and dates with it.
pub fn user_locale() -> Option<String> {
    let value = ["LC_ALL", "LC_MONETARY", "LANG"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.is_empty())?;
    bcp47_of_posix_locale(&value)
}

/// `de_DE.UTF-8@euro` → `de-DE`; `None` for `C`, `POSIX` or anything that is not a locale name.
fn bcp47_of_posix_locale(value: &str) -> Option<String> {
    let name = value.split(['.', '@']).next().unwrap_or("");
    if name.is_empty() || name == "C" || name == "POSIX" {
        return None;
    }
    let tag = name.replace('_', "-");
    tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-').then_some(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posix_locale_names_become_bcp47_tags() {
        assert_eq!(bcp47_of_posix_locale("de_DE.UTF-8").as_deref(), Some("de-DE"));
        assert_eq!(bcp47_of_posix_locale("fr_FR.UTF-8@euro").as_deref(), Some("fr-FR"));
        assert_eq!(bcp47_of_posix_locale("en_US").as_deref(), Some("en-US"));
        assert_eq!(bcp47_of_posix_locale("C.UTF-8"), None);
        assert_eq!(bcp47_of_posix_locale("POSIX"), None);
        assert_eq!(bcp47_of_posix_locale("x;rm"), None);
    }

    #[test]
    fn reads_like_a_receipt() {
        let en = MoneyStyle::EN_US;
        assert_eq!(en.usd(3.4249), "$3.42");
        assert_eq!(en.usd(0.004), "$0.0040");
        assert_eq!(en.usd(0.0), "$0.00");
        assert_eq!(en.usd(1234.5), "$1,234.50");
        assert_eq!(en.usd(-1234567.891), "-$1,234,567.89");
        assert_eq!(en.usd(-0.0000001), "$0.0000");
        assert_eq!(en.usd_short(20.0), "$20");
        assert_eq!(en.usd_short(1500.0), "$1,500");
        assert_eq!(en.usd_short(12.5), "$12.50");
        assert_eq!(count(950.0), "950");
        assert_eq!(count(1_234_567.0), "1.2M");
        assert_eq!(count(2_000.0), "2.0k");
    }

    #[test]
    fn money_reads_as_the_locale_writes_it() {
        let money = |tag: &str, v: f64| MoneyStyle::of_locale(tag).usd(v);
        assert_eq!(money("en-US", 1234.5), "$1,234.50");
        assert_eq!(money("en-GB", 1.75), "$1.75");
        assert_eq!(money("de-DE", 1234.5), "1.234,50\u{a0}$");
        assert_eq!(money("de-DE", 0.004), "0,0040\u{a0}$");
        assert_eq!(money("de-AT", 1.75), "$\u{a0}1,75");
        assert_eq!(money("de-CH", 1234.5), "$\u{a0}1\u{2019}234.50");
        assert_eq!(money("fr-FR", 1234.5), "1\u{202f}234,50\u{a0}$");
        assert_eq!(money("nl-NL", 1234.5), "$\u{a0}1.234,50");
        assert_eq!(money("pt-BR", 1.75), "$\u{a0}1,75");
        assert_eq!(money("pt-PT", 1.75), "1,75\u{a0}$");
        assert_eq!(money("es-ES", 1.75), "1,75\u{a0}$");
        assert_eq!(money("es-MX", 1.75), "$1.75");
        assert_eq!(money("sv-SE", 1234.5), "1\u{a0}234,50\u{a0}$");
        assert_eq!(money("ja-JP", 1234.5), "$1,234.50");
        assert_eq!(money("xx-YY", 1234.5), "$1,234.50", "a locale not in the table reads as en-US");
        assert_eq!(MoneyStyle::of_locale("de-DE").usd_short(20.0), "20\u{a0}$");
        assert_eq!(MoneyStyle::of_locale("de-DE").usd(-3.5), "-3,50\u{a0}$");
    }
}
