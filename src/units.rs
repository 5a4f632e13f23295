//! Sizes and durations as people write them in flags, environment variables and JSON
//! (`2GiB`, `500MB`, `30m`, `7d`). Below every layer that reads them (config, api, commands);
//! imports nothing of the crate.

use std::time::Duration;

/// A byte count for people: an exact binary multiple as such (`50 GiB`), else SI with one
/// decimal (`1.5 GB`), and bytes below 1 kB (`512 B`).
pub fn human_size(n: u64) -> String {
    // The largest binary unit the count reaches, when the count is a whole number of it.
    let binary = [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    if let Some((unit, f)) = binary.into_iter().find(|&(_, f)| n >= f) {
        if n % f == 0 {
            return format!("{} {unit}", n / f);
        }
    }
    for (unit, f) in [("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)] {
        if n as f64 >= f {
            let v = format!("{:.1}", n as f64 / f);
            return format!("{} {unit}", v.strip_suffix(".0").unwrap_or(&v));
        }
    }
    format!("{n} B")
}

/// A byte count with an optional unit: `1000`, `1kB`/`1K` (10^3), `1MB`, `1GB`, `1TB`,
/// `1KiB` (2^10), `1MiB`, `1GiB`, `1TiB`; spaces and case are ignored (as go-humanize, which
/// Gitea uses for its limits).
pub fn parse_size(s: &str) -> Option<u64> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        "ti" | "tib" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// A duration: `90` or `90s` (seconds), `30m`, `24h`, `7d`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(mult).map(Duration::from_secs)
}

/// A duration as `parse_duration` reads it back: the largest of d, h, m, s that divides it
/// (`24h`, `7d`, `90s`, `15s`); below a second, milliseconds (`250ms`).
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() != 0 || secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs % n == 0 {
            return format!("{}{unit}", secs / n);
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_for_people_read_back() {
        for (secs, text) in [
            (86_400, "1d"),
            (3600 * 36, "36h"),
            (1800, "30m"),
            (90, "90s"),
        ] {
            let d = Duration::from_secs(secs);
            assert_eq!(human_duration(d), text);
            assert_eq!(parse_duration(text), Some(d));
        }
        assert_eq!(human_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(human_duration(Duration::ZERO), "0ms");
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(human_size(53_687_091_200), "50 GiB");
        assert_eq!(human_size(50_000_000_000), "50 GB");
        assert_eq!(human_size(1_500_000), "1.5 MB");
        assert_eq!(human_size(1024), "1 KiB");
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(0), "0 B");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("24h"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("1w"), None);
        assert_eq!(parse_duration("h"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("1 MB"), Some(1_000_000));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("5k"), Some(5000));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("1 parsec"), None);
        assert_eq!(parse_size("99999999999999999999"), None);
    }
}
