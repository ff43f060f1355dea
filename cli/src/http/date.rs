//! HTTP dates (RFC 9110 §5.6.7): IMF-fixdate out, all three formats in.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]; // 1970-01-01 was a Thursday
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31).
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

/// (year, month 1..=12, day) → days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Format a time as an IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
/// Times before 1970 are clamped to the epoch.
pub fn format_http_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let secs = i64::try_from(secs).unwrap_or(i64::MAX / 2);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

fn month(s: &str) -> Option<u32> {
    MONTHS.iter().position(|m| *m == s).map(|i| i as u32 + 1)
}

fn num(s: &str, min_len: usize, max_len: usize) -> Option<u32> {
    if s.len() < min_len || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn hms(s: &str) -> Option<(u32, u32, u32)> {
    let mut it = s.split(':');
    let h = num(it.next()?, 2, 2)?;
    let m = num(it.next()?, 2, 2)?;
    let sec = num(it.next()?, 2, 2)?;
    if it.next().is_some() || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some((h, m, sec))
}

fn build(y: i64, mo: u32, d: u32, (h, mi, s): (u32, u32, u32)) -> Option<SystemTime> {
    if !(1..=31).contains(&d) || y < 1970 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    // Reject impossible dates such as Feb 30 (they do not round-trip).
    if civil_from_days(days) != (y, mo, d) {
        return None;
    }
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s);
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Parse an HTTP date in IMF-fixdate, RFC 850 or asctime format.
/// Returns `None` for anything invalid (callers then ignore the field).
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let parts: Vec<&str> = s.split_ascii_whitespace().collect();
    match parts.as_slice() {
        // Sun, 06 Nov 1994 08:49:37 GMT
        [wd, d, mo, y, t, "GMT"] if wd.len() == 4 && wd.ends_with(',') => {
            build(i64::from(num(y, 4, 4)?), month(mo)?, num(d, 2, 2)?, hms(t)?)
        }
        // Sunday, 06-Nov-94 08:49:37 GMT
        [wd, date, t, "GMT"] if wd.ends_with(',') => {
            let mut it = date.split('-');
            let d = num(it.next()?, 2, 2)?;
            let mo = month(it.next()?)?;
            let yy = i64::from(num(it.next()?, 2, 2)?);
            if it.next().is_some() {
                return None;
            }
            // RFC 9110: a two-digit year more than 50 years ahead is in the past.
            let y = if yy < 70 { 2000 + yy } else { 1900 + yy };
            build(y, mo, d, hms(t)?)
        }
        // Sun Nov  6 08:49:37 1994
        [_wd, mo, d, t, y] => build(i64::from(num(y, 4, 4)?), month(mo)?, num(d, 1, 2)?, hms(t)?),
        _ => None,
    }
}

#[cfg(test)]
mod date_tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(format_http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(t));
        assert_eq!(
            format_http_date(UNIX_EPOCH),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
        let t2 = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(format_http_date(t2), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(parse_http_date(&format_http_date(t2)), Some(t2));
        for bad in [
            "",
            "yesterday",
            "Sun, 30 Feb 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 PST",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 99999999999 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }
}
