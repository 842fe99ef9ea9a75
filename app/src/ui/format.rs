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

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `1234` → `1.2 KB`, `5_600_000` → `5.6 MB` (the browser's export progress).
#[cfg(any(feature = "hydrate", test))]
pub fn bytes(n: usize) -> String {
    if n < 1_000_000 { format!("{:.1} KB", n as f64 / 1e3) } else { format!("{:.1} MB", n as f64 / 1e6) }
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
        assert_eq!(bytes(1234), "1.2 KB");
        assert_eq!(bytes(5_600_000), "5.6 MB");
    }
}
