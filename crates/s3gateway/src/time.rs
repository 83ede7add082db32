//! Times as S3 writes them: ISO 8601 with milliseconds in XML, RFC 7231
//! dates in headers. Pachyderm keeps nanoseconds since the epoch.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) fn system_time(ns: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64)
}

/// `2024-01-02T03:04:05.678Z`.
pub(crate) fn iso8601(ns: i64) -> String {
    let ns = ns.max(0);
    let secs = ns / 1_000_000_000;
    let millis = (ns % 1_000_000_000) / 1_000_000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// `Tue, 02 Jan 2024 03:04:05 GMT` (whole seconds, as HTTP dates are).
pub(crate) fn http_date(ns: i64) -> String {
    httpdate::fmt_http_date(system_time(ns))
}

/// Seconds since the epoch, as an HTTP date compares.
pub(crate) fn whole_seconds(ns: i64) -> u64 {
    (ns.max(0) / 1_000_000_000) as u64
}

/// An HTTP date (RFC 7231's three forms; RFC 2822's `+0000` zone is taken
/// for `GMT`, as clients that format dates by hand write it).
pub(crate) fn parse_http_date(s: &str) -> Option<u64> {
    let s = s.trim();
    let s = match s.strip_suffix(" +0000") {
        Some(rest) => format!("{rest} GMT"),
        None => s.to_string(),
    };
    let t = httpdate::parse_http_date(&s).ok()?;
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// `20130524T000000Z`, the form of Signature V4's dates, of seconds since
/// the epoch.
pub(crate) fn amz_date(secs: u64) -> String {
    let iso = iso8601(secs as i64 * 1_000_000_000);
    // 2013-05-24T00:00:00.000Z → 20130524T000000Z
    let digits: String = iso[..19]
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    format!("{digits}Z")
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        // 2024-02-29T12:34:56.789Z
        let ns = 1_709_210_096_789_000_000;
        assert_eq!(iso8601(ns), "2024-02-29T12:34:56.789Z");
        assert_eq!(http_date(ns), "Thu, 29 Feb 2024 12:34:56 GMT");
        assert_eq!(
            parse_http_date("Thu, 29 Feb 2024 12:34:56 GMT"),
            Some(whole_seconds(ns))
        );
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
