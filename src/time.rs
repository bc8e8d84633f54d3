//! Time helpers: UTC microseconds since the Unix epoch, RFC 3339 at the edges.

use chrono::{DateTime, SecondsFormat, Utc};

/// The latest timestamp accepted: 9999-12-31T23:59:59.999999Z.
pub const MAX_TIMESTAMP_US: i64 = 253_402_300_799_999_999;

pub fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

pub fn format_rfc3339_us(timestamp_us: i64) -> String {
    match DateTime::<Utc>::from_timestamp_micros(timestamp_us) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Micros, true),
        None => timestamp_us.to_string(),
    }
}

/// Parses RFC 3339 (`2024-05-01T12:00:00Z`, any offset) or an integer of microseconds.
pub fn parse_timestamp_us(text: &str) -> Option<i64> {
    if let Ok(us) = text.parse::<i64>() {
        return Some(us);
    }
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip_keeps_microseconds() {
        let us = 1_700_000_000_123_456;
        let text = format_rfc3339_us(us);
        assert_eq!(text, "2023-11-14T22:13:20.123456Z");
        assert_eq!(parse_timestamp_us(&text), Some(us));
        assert_eq!(parse_timestamp_us("2023-11-14T23:13:20.123456+01:00"), Some(us));
        assert_eq!(parse_timestamp_us("yesterday"), None);
    }
}
