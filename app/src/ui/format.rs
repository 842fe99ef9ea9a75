//! Small display helpers shared by the pages.

/// `2026-11-27T12:40:05Z` → `2026-11-27 12:40 UTC`.
pub fn time(rfc3339: &str) -> String {
    match rfc3339.get(..16) {
        Some(prefix) => format!("{} UTC", prefix.replacen('T', " ", 1)),
        None => rfc3339.to_string(),
    }
}

/// `sha256:abcdef…` → `abcdef12…` (the first 12 hex digits).
pub fn short_digest(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.chars().take(12).collect()
}

/// `v12`, or an em dash for nothing.
pub fn version(n: Option<i64>) -> String {
    n.map_or_else(|| "—".to_string(), |n| format!("v{n}"))
}

/// `17` → `17 B`, `1234` → `1.2 KB`, `5_600_000` → `5.6 MB`, `3e9` → `3.0 GB`: file sizes and an
/// export's progress.
pub fn bytes(n: usize) -> String {
    match n {
        0..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{:.1} KB", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        _ => format!("{:.1} GB", n as f64 / 1e9),
    }
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `2026-11-27T12:40:05.5Z` → milliseconds since the epoch (UTC times as the server writes them).
pub fn epoch_ms(rfc3339: &str) -> Option<i64> {
    let num = |range: std::ops::Range<usize>| rfc3339.get(range)?.parse::<i64>().ok();
    let days = days_from_civil(num(0..4)?, num(5..7)?, num(8..10)?);
    let seconds = num(11..13)? * 3600 + num(14..16)? * 60 + num(17..19)?;
    let fraction = rfc3339.get(19..).and_then(|f| f.strip_prefix('.')).map_or(0, |f| {
        let digits: String = f.chars().take_while(char::is_ascii_digit).chain("000".chars()).take(3).collect();
        digits.parse().unwrap_or(0)
    });
    Some((days * 86_400 + seconds) * 1000 + fraction)
}

/// Milliseconds since the epoch → `11-27 12:40` (a chart's time axis).
pub fn short_time(ms: i64) -> String {
    let (_, m, d) = civil_from_days(ms.div_euclid(86_400_000));
    let minute = ms.rem_euclid(86_400_000) / 60_000;
    format!("{m:02}-{d:02} {:02}:{:02}", minute / 60, minute % 60)
}

/// Milliseconds since the epoch → `2026-11-27 12:40:05.250 UTC` (a tooltip's exact time).
pub fn exact_time(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(86_400_000));
    let t = ms.rem_euclid(86_400_000);
    format!("{y}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03} UTC", t / 3_600_000, t / 60_000 % 60, t / 1000 % 60, t % 1000)
}

/// A number short enough for an axis label: `0.925`, `1.2k`, `3.4e-5`.
pub fn compact(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e6).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A measured value to six significant digits: `183.463`, `0.00785014`.
pub fn significant(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return v.to_string();
    }
    let decimals = (5 - v.abs().log10().floor() as i32).clamp(0, 12) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_digests_and_versions() {
        assert_eq!(time("2026-11-27T12:40:05Z"), "2026-11-27 12:40 UTC");
        assert_eq!(short_digest(&format!("sha256:{}", "a1".repeat(32))), "a1a1a1a1a1a1");
        assert_eq!(version(Some(3)), "v3");
        assert_eq!(version(None), "—");
        assert_eq!(bytes(17), "17 B");
        assert_eq!(bytes(1234), "1.2 KB");
        assert_eq!(bytes(5_600_000), "5.6 MB");
    }

    #[test]
    fn converts_times_and_compacts_numbers() {
        assert_eq!(epoch_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(epoch_ms("2026-01-01T00:00:00Z"), Some(1_767_225_600_000));
        assert_eq!(epoch_ms("2026-01-01T00:00:01.5Z"), Some(1_767_225_601_500));
        assert_eq!(epoch_ms("garbage"), None);
        assert_eq!(short_time(1_767_225_600_000 + 3_723_000), "01-01 01:02");
        assert_eq!(exact_time(1_767_225_601_500), "2026-01-01 00:00:01.500 UTC");
        assert_eq!(exact_time(951_782_400_000), "2000-02-29 00:00:00.000 UTC");
        assert_eq!(compact(0.925), "0.925");
        assert_eq!(compact(250.0), "250");
        assert_eq!(compact(12_345.0), "12.3k");
        assert_eq!(compact(0.00002), "2.0e-5");
        assert_eq!(significant(183.46314378196257), "183.463");
        assert_eq!(significant(0.007850135343580257), "0.00785014");
        assert_eq!(significant(250.0), "250");
        assert_eq!(significant(1234567.0), "1234567");
    }
}
