//! Cron schedules of cron inputs: `@every <duration>`, the `@hourly`-style
//! shorthands, and five-field cron expressions (minute hour day-of-month month
//! day-of-week, UTC) with `*`, lists, ranges and steps.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{PpsError, Result};
use crate::spec::{CronInput, Input};

#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Every(Duration),
    /// Allowed values per field: minute, hour, day of month, month, weekday.
    Fields([Vec<u32>; 5]),
}

impl Schedule {
    pub fn parse(spec: &str) -> Result<Schedule> {
        let bad = |why: &str| PpsError::InvalidSpec(format!("input.cron.spec '{spec}': {why}"));
        let spec_t = spec.trim();
        if let Some(d) = spec_t.strip_prefix("@every") {
            let d = humantime::parse_duration(d.trim()).map_err(|e| bad(&e.to_string()))?;
            if d.is_zero() {
                return Err(bad("the interval must be positive"));
            }
            return Ok(Schedule::Every(d));
        }
        let expr = match spec_t {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            "@yearly" | "@annually" => "0 0 1 1 *",
            other => other,
        };
        let fields: Vec<&str> = expr.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(bad(
                "expected five fields (minute hour day month weekday) or @every DURATION",
            ));
        }
        let ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)];
        let mut out: [Vec<u32>; 5] = Default::default();
        for (i, (f, (lo, hi))) in fields.iter().zip(ranges).enumerate() {
            out[i] =
                parse_field(f, lo, hi).ok_or_else(|| bad(&format!("field '{f}' is not valid")))?;
        }
        Ok(Schedule::Fields(out))
    }

    /// The first tick after `t`.
    pub fn next_after(&self, t: SystemTime) -> SystemTime {
        t + self.until_next(t)
    }

    /// Time from `now` until the next tick.
    pub fn until_next(&self, now: SystemTime) -> Duration {
        match self {
            Schedule::Every(d) => *d,
            Schedule::Fields(f) => {
                let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
                let first = secs / 60 + 1;
                // At most a few years of minutes; a valid expression matches well before.
                (first..first + 60 * 24 * 366 * 5)
                    .find(|m| matches_minute(f, *m))
                    .map(|m| Duration::from_secs(m * 60 - secs))
                    .unwrap_or(Duration::from_secs(3600))
            }
        }
    }
}

fn parse_field(f: &str, lo: u32, hi: u32) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in f.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0)?),
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (a.parse().ok()?, b.parse().ok()?)
        } else {
            let v: u32 = range.parse().ok()?;
            (v, if part.contains('/') { hi } else { v })
        };
        if a < lo || b > hi || a > b {
            return None;
        }
        out.extend((a..=b).step_by(step as usize));
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

fn matches_minute(f: &[Vec<u32>; 5], minute: u64) -> bool {
    let m = (minute % 60) as u32;
    let h = ((minute / 60) % 24) as u32;
    let days = minute / (60 * 24);
    let weekday = ((days + 4) % 7) as u32; // 1970-01-01 was a Thursday
    let (_, month, day) = civil_from_days(days as i64);
    f[0].contains(&m)
        && f[1].contains(&h)
        && f[2].contains(&day)
        && f[3].contains(&month)
        && f[4].contains(&weekday)
}

/// Calendar date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Every cron input of an input tree.
pub fn cron_inputs(input: &Input) -> Vec<&CronInput> {
    input
        .walk()
        .into_iter()
        .filter_map(|i| i.cron.as_ref())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        assert_eq!(
            Schedule::parse("@every 10s").unwrap(),
            Schedule::Every(Duration::from_secs(10))
        );
        assert!(Schedule::parse("@every nope").is_err());
        assert!(Schedule::parse("61 * * * *").is_err());
        assert!(Schedule::parse("* * *").is_err());
        // 2026-11-25T10:07:30Z (a Wednesday): next "*/15 * * * *" is 10:15:00.
        let now = UNIX_EPOCH + Duration::from_secs(1_795_601_250);
        let s = Schedule::parse("*/15 * * * *").unwrap();
        assert_eq!(s.until_next(now), Duration::from_secs(7 * 60 + 30));
        // Next "0 0 * * 4" (Thursday midnight) is 2026-11-26T00:00:00Z.
        let s = Schedule::parse("0 0 * * 4").unwrap();
        assert_eq!(
            s.until_next(now),
            Duration::from_secs(1_795_651_200 - 1_795_601_250)
        );
        assert_eq!(civil_from_days(20_417), (2025, 11, 25));
    }
}
