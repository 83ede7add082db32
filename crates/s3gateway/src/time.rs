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

/// An HTTP date (RFC 7231's three forms). In the usual one, `Sun, 06 Nov
/// 1994 08:49:37 GMT`, the weekday's name is not checked against the date,
/// as S3 and Go's parser do not (clients that write dates by hand get it
/// wrong, and the date then still says when), and RFC 2822's `+0000` and
/// `-0000` zones are taken for `GMT`, as Python's `formatdate` writes them.
pub(crate) fn parse_http_date(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some((weekday, rest)) = s.split_once(", ")
        && weekday.len() == 3
        && weekday.bytes().all(|b| b.is_ascii_alphabetic())
    {
        return parse_day_month_year(rest);
    }
    let t = httpdate::parse_http_date(s).ok()?;
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// `06 Nov 1994 08:49:37 GMT`.
fn parse_day_month_year(s: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut fields = s.split(' ');
    let (day, month, year, time, zone) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    if fields.next().is_some()
        || day.len() != 2
        || year.len() != 4
        || !matches!(zone, "GMT" | "+0000" | "-0000")
    {
        return None;
    }
    let month = MONTHS.iter().position(|m| *m == month)? as u32 + 1;
    let (h, mi, sec) = parse_clock(time)?;
    seconds_since_epoch(year.parse().ok()?, month, day.parse().ok()?, h, mi, sec)
}

/// Seconds since the epoch of an ISO 8601 time in UTC, as S3's XML writes
/// them: `2024-01-02T03:04:05Z`, with or without fractions of a second,
/// `Z` or `+00:00`.
pub(crate) fn parse_iso8601(s: &str) -> Option<u64> {
    let s = s.trim();
    let s = s
        .strip_suffix('Z')
        .or_else(|| s.strip_suffix("+00:00"))
        .unwrap_or(s);
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-');
    let (y, m, day): (i64, u32, u32) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    if d.next().is_some() {
        return None;
    }
    let (h, mi, sec) = parse_clock(time.split('.').next()?)?;
    seconds_since_epoch(y, m, day, h, mi, sec)
}

/// `08:49:37`.
fn parse_clock(time: &str) -> Option<(u64, u64, u64)> {
    let mut t = time.split(':');
    let clock = (
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
    );
    t.next().is_none().then_some(clock)
}

/// A UTC date and time as seconds since the epoch; None when a field is out
/// of range or the time is before 1970.
fn seconds_since_epoch(y: i64, m: u32, day: u32, h: u64, mi: u64, sec: u64) -> Option<u64> {
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(y, m, day);
    u64::try_from(days * 86_400)
        .ok()
        .map(|s| s + h * 3600 + mi * 60 + sec)
}

/// Howard Hinnant's civil-to-days algorithm (proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
        // The weekday's name is not checked (29 Feb 2024 was a Thursday);
        // RFC 2822's zones are GMT; the other two forms of RFC 7231 parse.
        for same in [
            "Mon, 29 Feb 2024 12:34:56 GMT",
            "Thu, 29 Feb 2024 12:34:56 +0000",
            "Thu, 29 Feb 2024 12:34:56 -0000",
            "Thursday, 29-Feb-24 12:34:56 GMT",
            "Thu Feb 29 12:34:56 2024",
        ] {
            assert_eq!(parse_http_date(same), Some(whole_seconds(ns)), "{same}");
        }
        for bad in [
            "Thu, 29 Feb 2024 12:34:56 +0100",
            "Thu, 29 Feb 2024 12:34:56",
            "Thu, 29 Foo 2024 12:34:56 GMT",
            "Thu, 29 Feb 2024 25:34:56 GMT",
            "Thu, 29 Feb 1950 12:34:56 GMT",
            "Thu, 1 Feb 2024 12:34:56 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
        assert_eq!(
            parse_iso8601("2024-02-29T12:34:56.789Z"),
            Some(whole_seconds(ns))
        );
        assert_eq!(
            parse_iso8601("2024-02-29T12:34:56+00:00"),
            Some(whole_seconds(ns))
        );
        assert_eq!(parse_iso8601("1970-01-01T00:00:00Z"), Some(0));
        for bad in [
            "2024-02-29",
            "2024-13-01T00:00:00Z",
            "2024-02-29T25:00:00Z",
            "x",
        ] {
            assert_eq!(parse_iso8601(bad), None, "{bad}");
        }
    }
}
