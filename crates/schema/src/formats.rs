//! String formats the API server checks in custom resources (kube-openapi's `strfmt`
//! registry; the Gateway API uses `date-time`, `ipv4` and `ipv6`). Formats not listed here
//! are not checked, as the real server ignores formats it does not know.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use regex::Regex;

/// Whether `format` is one this module checks.
pub fn known(format: &str) -> bool {
    matches!(
        format,
        "date-time"
            | "datetime"
            | "date"
            | "ipv4"
            | "ipv6"
            | "cidr"
            | "mac"
            | "uuid"
            | "uuid3"
            | "uuid4"
            | "uuid5"
            | "hostname"
            | "byte"
            | "duration"
    )
}

static DATE_TIME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})?$",
    )
    .expect("regex")
});
static DATE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(\d{4})-(\d{2})-(\d{2})$").expect("regex"));
static UUID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
        .expect("regex")
});
static MAC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^([0-9a-f]{2}:){5}([0-9a-f]{2}:){0,14}[0-9a-f]{2}$|^([0-9a-f]{2}-){5}([0-9a-f]{2}-){0,14}[0-9a-f]{2}$|^([0-9a-f]{4}\.){2,9}[0-9a-f]{4}$")
        .expect("regex")
});
static HOSTNAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])(\.([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]{0,61}[a-zA-Z0-9]))*\.?$")
        .expect("regex")
});
static BASE64: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$").expect("regex")
});
static DURATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d|w))+$|^0$").expect("regex")
});

fn date_ok(y: &str, m: &str, d: &str) -> bool {
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<u32>(), m.parse::<u32>(), d.parse::<u32>()) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// Whether `s` is a valid value of `format` (a format not [`known`] is always valid).
pub fn valid(format: &str, s: &str) -> bool {
    match format {
        "date-time" | "datetime" => DATE_TIME.captures(s).is_some_and(|c| {
            let n = |i: usize| {
                c.get(i)
                    .map_or(0, |m| m.as_str().parse::<u32>().unwrap_or(99))
            };
            date_ok(&c[1], &c[2], &c[3]) && n(4) < 24 && n(5) < 60 && n(6) < 61
        }),
        "date" => DATE
            .captures(s)
            .is_some_and(|c| date_ok(&c[1], &c[2], &c[3])),
        // Go's net.ParseIP: dotted quads without leading zeros; IPv6 in any textual form.
        "ipv4" => s.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => s.contains(':') && s.parse::<Ipv6Addr>().is_ok(),
        "cidr" => s.split_once('/').is_some_and(|(ip, bits)| {
            let Ok(bits) = bits.parse::<u8>() else {
                return false;
            };
            (ip.parse::<Ipv4Addr>().is_ok() && bits <= 32)
                || (ip.parse::<Ipv6Addr>().is_ok() && bits <= 128)
        }),
        "mac" => MAC.is_match(s),
        "uuid" | "uuid3" | "uuid4" | "uuid5" => UUID.is_match(s),
        "hostname" => s.len() <= 255 && HOSTNAME.is_match(s),
        "byte" => BASE64.is_match(s),
        "duration" => DURATION.is_match(s),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert!(valid("ipv4", "10.0.0.1"));
        assert!(!valid("ipv4", "1.2.3.4:8080"));
        assert!(!valid("ipv4", "::1"));
        assert!(valid("ipv6", "::1"));
        assert!(valid("ipv6", "2001:db8::1"));
        assert!(!valid("ipv6", "10.0.0.1"));
        assert!(valid("date-time", "2026-01-01T00:00:00Z"));
        assert!(valid("date-time", "1970-01-01T00:00:00.123+02:00"));
        assert!(!valid("date-time", "2026-02-30T00:00:00Z"));
        assert!(!valid("date-time", "yesterday"));
        assert!(valid("cidr", "10.0.0.0/8"));
        assert!(!valid("cidr", "10.0.0.0/33"));
        assert!(valid("uuid", "6664b501-a304-4c21-a069-29a1edee1ce4"));
        assert!(valid("made-up", "anything"));
    }
}
