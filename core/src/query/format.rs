//! Amounts and counts as people read them, shared by `tokentray report`, `budget status`, the
//! tray label and the alert texts, so that every place prints `$3.42` and `1.2M` alike.

/// Dollars: cents, or four decimals below one cent (`$0.0040`), so small sessions are not `$0.00`.
pub fn usd(v: f64) -> String {
    if v != 0.0 && v.abs() < 0.01 {
        format!("${v:.4}")
    } else {
        format!("${v:.2}")
    }
}

/// Dollars without cents when whole: `$20`, `$12.50` (limits in sentences and the tray).
pub fn usd_short(v: f64) -> String {
    if (v - v.round()).abs() < 0.005 {
        format!("${:.0}", v.round())
    } else {
        format!("${v:.2}")
    }
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
        assert_eq!(usd(3.4249), "$3.42");
        assert_eq!(usd(0.004), "$0.0040");
        assert_eq!(usd(0.0), "$0.00");
        assert_eq!(usd_short(20.0), "$20");
        assert_eq!(usd_short(12.5), "$12.50");
        assert_eq!(count(950.0), "950");
        assert_eq!(count(1_234_567.0), "1.2M");
        assert_eq!(count(2_000.0), "2.0k");
    }
}
