//! A search box's text: words, and the filters `from:NAME`, `in:CHANNEL`, `has:file`,
//! `before:YYYY-MM-DD` and `after:YYYY-MM-DD` (a value may be quoted: `in:"family chat"`).
//! Dates are UTC days: `before:` keeps messages from before that day, `after:` from after it.

use super::text::{Term, terms};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ParsedQuery {
    pub terms: Vec<Term>,
    /// Usernames (or display names) of `from:`, any of which matches.
    pub from: Vec<String>,
    /// Channel names of `in:`, any of which matches.
    pub within: Vec<String>,
    /// `has:file`: messages with attachments.
    pub has_file: bool,
    /// Unix ms: only messages created before this.
    pub before: Option<i64>,
    /// Unix ms: only messages created at or after this.
    pub after: Option<i64>,
}

impl ParsedQuery {
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
            && self.from.is_empty()
            && self.within.is_empty()
            && !self.has_file
            && self.before.is_none()
            && self.after.is_none()
    }
}

/// Splits at whitespace outside double quotes; quotes group and are dropped.
fn pieces(q: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in q.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The UTC day of a Unix ms time as `YYYY-MM-DD` (the inverse of [`days_from_civil`]).
pub fn utc_date(ms: i64) -> String {
    let z = ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The Unix ms at which a `YYYY-MM-DD` day begins (UTC).
fn day_start(value: &str) -> Result<i64, String> {
    let bad = || format!("{value:?} is not a date like 2025-12-31");
    let mut parts = value.split('-');
    let (Some(y), Some(m), Some(d), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let (y, m, d): (i64, i64, i64) =
        (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if !(1970..=9999).contains(&y) || !(1..=days_in_month).contains(&d) {
        return Err(bad());
    }
    Ok(days_from_civil(y, m, d) * 86_400_000)
}

/// Parses a query; `Err` names what is wrong with it.
pub fn parse(q: &str) -> Result<ParsedQuery, String> {
    let mut parsed = ParsedQuery::default();
    let mut text = Vec::new();
    for piece in pieces(q) {
        let filter = piece.split_once(':').map(|(k, v)| (k.to_ascii_lowercase(), v));
        match filter {
            Some((key, value)) if key == "from" && !value.is_empty() => {
                parsed.from.push(value.trim_start_matches('@').to_string())
            }
            Some((key, value)) if key == "in" && !value.is_empty() => {
                parsed.within.push(value.trim_start_matches('#').to_string())
            }
            Some((key, value)) if key == "has" => {
                if value.eq_ignore_ascii_case("file") {
                    parsed.has_file = true;
                } else {
                    return Err(format!("has:{value} is not a filter; has:file is"));
                }
            }
            Some((key, value)) if key == "before" => {
                let t = day_start(value)?;
                parsed.before = Some(parsed.before.map_or(t, |b| b.min(t)));
            }
            Some((key, value)) if key == "after" => {
                let t = day_start(value)? + 86_400_000;
                parsed.after = Some(parsed.after.map_or(t, |a| a.max(t)));
            }
            _ => text.push(piece),
        }
    }
    parsed.terms = terms(&text.join(" "));
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_filters_are_told_apart() {
        let p = parse(r#"dinner FROM:@mum in:"family chat" in:#general 晚餐 http://x.org"#).unwrap();
        assert_eq!(p.from, ["mum"]);
        assert_eq!(p.within, ["family chat", "general"]);
        let words: Vec<String> = p.terms.iter().flat_map(|t| t.tokens()).collect();
        assert_eq!(words, ["dinner", "晚餐", "http", "x", "org"]);
    }

    #[test]
    fn dates_are_utc_days() {
        let p = parse("before:2024-03-01 after:2024-02-28").unwrap();
        assert_eq!(p.before, Some(1_709_251_200_000), "2024-03-01T00:00Z");
        assert_eq!(p.after, Some(1_709_164_800_000), "after the 28th: from 2024-02-29T00:00Z");
        assert!(parse("before:2023-02-29").is_err());
        assert!(parse("after:2024-13-01").is_err());
        assert!(parse("before:yesterday").is_err());
        assert!(parse("has:link").is_err());
        assert!(parse("has:file").unwrap().has_file);
    }

    #[test]
    fn dates_round_trip() {
        for date in ["1970-01-01", "2024-02-29", "2025-12-31", "2100-03-01"] {
            assert_eq!(utc_date(day_start(date).unwrap() + 3_600_000), date);
        }
    }

    #[test]
    fn nothing_to_search_is_empty() {
        assert!(parse("  ").unwrap().is_empty());
        assert!(parse("!!! ???").unwrap().is_empty());
        assert!(!parse("from:bob").unwrap().is_empty());
    }
}
