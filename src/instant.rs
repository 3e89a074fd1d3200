//! Instants as rappel stores them (UTC `YYYY-MM-DDTHH:MM:SSZ`) and as host
//! applications write them (fractional seconds, offsets, Django's
//! `YYYY-MM-DD HH:MM:SS`), always compared after parsing, never as text.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The one format rappel writes; its text order is its time order.
pub fn format(t: DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    // Written field by field: chrono's strftime parses its pattern on every
    // call, and planning writes an instant into every dedupe key.
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Parses an instant written by a host application, a value without an
/// offset taken as UTC; `None` when it is not one. This reading names a
/// source row in dedupe keys (`db::identity`), so it never depends on the
/// configuration: when a message is due comes from `parse_in`.
pub fn parse(s: &str) -> Option<DateTime<Utc>> {
    parse_any_year(s).filter(storable)
}

/// Parses an instant written by a host application, a value without an
/// offset (`2026-03-10 14:00:00`, as Django with `USE_TZ = False` or PHP
/// writes local time) read as a wall time in `naive` (`naive_timezone`, or a
/// terminal's zone; DESIGN §9). A time a clock change skips means the first
/// instant after the change, a repeated one the earlier. `None` when it is
/// not an instant.
pub fn parse_in(s: &str, naive: Tz) -> Option<DateTime<Utc>> {
    let t = parse(s)?;
    if naive == chrono_tz::UTC || has_offset(s) {
        return Some(t);
    }
    let local = local_to_utc(t.naive_utc(), naive);
    storable(&local).then_some(local)
}

/// Whether an instant as written carries its zone: `Z` or a `+hh:mm` /
/// `-hh:mm` offset after the time.
pub fn has_offset(s: &str) -> bool {
    let s = s.trim();
    if s.ends_with(['Z', 'z']) {
        return true;
    }
    // The time part begins after the date's 10 characters; an offset is a
    // sign there.
    s.get(11..).is_some_and(|time| time.contains(['+', '-']))
}

/// Whether `format` writes `t` in its 20 characters, so that it reads back and
/// sorts as text: years 0000 to 9999. chrono reads signed, longer years too.
fn storable(t: &DateTime<Utc>) -> bool {
    (0..=9999).contains(&chrono::Datelike::year(t))
}

fn parse_any_year(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if s.len() < 19 || !s.is_char_boundary(10) {
        return None;
    }
    // Django and SQLite's CURRENT_TIMESTAMP separate date and time with a space.
    let normalized;
    let s = if s.as_bytes()[10] == b' ' {
        normalized = format!("{}T{}", &s[..10], &s[11..]);
        normalized.as_str()
    } else {
        s
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    // PostgreSQL writes a timestamptz as text with an offset of hours alone
    // (`2026-11-10 12:07:28.13776+00`, `…+05:30`).
    if has_offset(s)
        && let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%#z")
    {
        return Some(t.with_timezone(&Utc));
    }
    // Without an offset the value is taken as UTC, as DESIGN §4 says.
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|naive| naive.and_utc())
}

/// Parses a due date that may be date-only: `YYYY-MM-DD` means 23:59:59 that
/// day in `zone` (the person's); a date and time without an offset is read
/// in `naive` (`parse_in`).
pub fn parse_due(s: &str, zone: Tz, naive: Tz) -> Option<DateTime<Utc>> {
    parse_dated(s, zone, naive, NaiveTime::from_hms_opt(23, 59, 59)?)
}

/// As [`parse_in`], and a date alone (`YYYY-MM-DD`, as a host's date
/// column holds it) means `time` that day in `zone` (a loan returned on a
/// date: from the start of that day in its borrower's zone).
pub fn parse_dated(s: &str, zone: Tz, naive: Tz, time: NaiveTime) -> Option<DateTime<Utc>> {
    let trimmed = s.trim();
    if trimmed.len() == 10 {
        // Digits where the form has them: chrono alone would also take a sign,
        // a short year and spaces before the month or day ("-001- 7-01").
        let shape = trimmed.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
        if !shape {
            return None;
        }
        let date = NaiveDate::parse_from_str(trimmed, "%Y-%m-%d").ok()?;
        let t = local_to_utc(date.and_time(time), zone);
        return storable(&t).then_some(t);
    }
    parse_in(trimmed, naive)
}

/// A local wall time in `zone` as an instant: a time inside a spring-forward gap
/// means the first instant after the gap; an ambiguous one (fall back) the earlier.
pub fn local_to_utc(local: NaiveDateTime, zone: Tz) -> DateTime<Utc> {
    use chrono::LocalResult;
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(earlier, _) => earlier.with_timezone(&Utc),
        LocalResult::None => {
            // Gaps are at most a few hours; walk forward minute by minute to the
            // first local time that exists, which is the end of the gap.
            let mut probe = local;
            for _ in 0..(24 * 60) {
                probe += chrono::Duration::minutes(1);
                let truncated = probe
                    .date()
                    .and_hms_opt(chrono::Timelike::hour(&probe), chrono::Timelike::minute(&probe), 0)
                    .unwrap_or(probe);
                if let Some(t) = zone.from_local_datetime(&truncated).earliest() {
                    return t.with_timezone(&Utc);
                }
            }
            local.and_utc()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn naive_values_are_read_in_the_given_zone_and_others_as_written() {
        let paris = chrono_tz::Europe::Paris;
        assert_eq!(
            parse_in("2026-03-10 14:00:00", paris),
            Some(utc("2026-03-10T13:00:00Z"))
        );
        assert_eq!(
            parse_in("2026-07-10T14:00:00.250", paris),
            Some(utc("2026-07-10T12:00:00.250Z"))
        );
        for written in [
            "2026-03-10T14:00:00Z",
            "2026-03-10 14:00:00+01:00",
            "2026-03-10T09:00:00-04:00",
        ] {
            assert_eq!(parse_in(written, paris), parse(written), "{written}");
            assert!(has_offset(written), "{written}");
        }
        assert!(!has_offset("2026-03-10 14:00:00"));
        assert!(!has_offset("2026-03-10"));
        // Skipped by the spring change: the first instant after it.
        assert_eq!(
            parse_in("2026-03-29 02:30:00", paris),
            Some(utc("2026-03-29T01:00:00Z"))
        );
        // Repeated by the autumn change: the earlier.
        assert_eq!(
            parse_in("2026-10-25 02:30:00", paris),
            Some(utc("2026-10-25T00:30:00Z"))
        );
        assert_eq!(
            parse_in("9999-12-31 23:00:00", chrono_tz::Pacific::Kiritimati),
            Some(utc("9999-12-31T09:00:00Z"))
        );
        assert_eq!(
            parse_in("0000-01-01 01:00:00", chrono_tz::Asia::Tokyo),
            None,
            "before year 0 in UTC"
        );
        assert_eq!(parse_in("soon", paris), None);
        // Due dates: a date alone in the person's zone, a naive time in `naive`.
        assert_eq!(
            parse_due("2026-03-13 12:00:00", chrono_tz::UTC, paris),
            Some(utc("2026-03-13T11:00:00Z"))
        );
    }

    #[test]
    fn accepts_every_documented_form() {
        let want = utc("2026-01-05T23:00:00Z");
        for s in [
            "2026-01-05T23:00:00Z",
            "2026-01-05T23:00:00.000Z",
            "2026-01-05 23:00:00",
            "2026-01-05 23:00:00.123",
            "2026-01-06T00:00:00+01:00",
            "2026-01-05 23:00:00+00:00",
            "2026-01-05T23:00:00",
        ] {
            let got = parse(s).unwrap_or_else(|| panic!("{s} should parse"));
            assert_eq!(got.timestamp(), want.timestamp(), "{s}");
        }
    }

    #[test]
    fn compares_as_instants_not_text() {
        let django = parse("2026-01-05 23:00:00").unwrap();
        let iso = parse("2026-01-05T10:00:00Z").unwrap();
        assert!(django > iso, "as text the order would be reversed");
    }

    #[test]
    fn rejects_garbage() {
        for s in ["", "yesterday", "2026-13-05 10:00:00", "2026-01-05", "05/01/2026 10:00"] {
            assert!(parse(s).is_none(), "{s} should not parse");
        }
    }

    #[test]
    fn instants_format_cannot_write_are_rejected() {
        // Found by fuzzing (fuzz/seeds/instant/): chrono took this as year -1,
        // which `format` writes in 21 characters that do not read back.
        let zone: Tz = "Europe/Paris".parse().unwrap();
        assert_eq!(parse_due("-001-\x0c7-01", zone, chrono_tz::UTC), None);
        for s in [
            "+10000-01-01T00:00:00Z",
            "-0001-07-02T05:39:23Z",
            "0000-01-01T00:30:00+01:00",
            "9999-12-31T23:00:00-01:00",
            "+10000-01-01 00:00:00",
        ] {
            assert_eq!(parse(s), None, "{s}");
            assert_eq!(parse_due(s, zone, chrono_tz::UTC), None, "{s}");
        }
        for s in ["2026-7-01 ", " 2026-07-1", "+026-07-01", "2026-07-0a"] {
            assert_eq!(parse_due(s, zone, chrono_tz::UTC), None, "{s:?}");
        }
        for s in ["0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z"] {
            let t = parse(s).unwrap();
            assert_eq!(format(t), s);
        }
        assert_eq!(
            parse_due("9999-12-31", chrono_tz::UTC, chrono_tz::UTC)
                .map(format)
                .as_deref(),
            Some("9999-12-31T23:59:59Z")
        );
    }

    #[test]
    fn date_only_due_is_end_of_local_day() {
        let zone: Tz = "Europe/Paris".parse().unwrap();
        assert_eq!(
            parse_due("2026-07-01", zone, chrono_tz::UTC).unwrap(),
            utc("2026-07-01T21:59:59Z")
        );
    }

    #[test]
    fn spring_forward_gap_means_first_instant_after() {
        let zone: Tz = "Europe/Paris".parse().unwrap();
        let local = NaiveDate::from_ymd_opt(2026, 3, 29)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        assert_eq!(local_to_utc(local, zone), utc("2026-03-29T01:00:00Z"));
    }

    #[test]
    fn fall_back_ambiguity_means_earlier() {
        let zone: Tz = "Europe/Paris".parse().unwrap();
        let local = NaiveDate::from_ymd_opt(2026, 10, 25)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        assert_eq!(local_to_utc(local, zone), utc("2026-10-25T00:30:00Z"));
    }

    #[test]
    fn format_round_trips() {
        let t = utc("2026-11-21T07:00:05Z");
        assert_eq!(format(t), "2026-11-21T07:00:05Z");
        assert_eq!(parse(&format(t)), Some(t));
    }
}
