//! Fuzz target: `instant::parse`, `parse_due` and `local_to_utc` never panic, and what they accept round-trips through `instant::format`.

#![no_main]

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, SubsecRound, Utc};
use chrono_tz::{TZ_VARIANTS, Tz};
use libfuzzer_sys::fuzz_target;
use rappel::instant;

/// What rappel stores must read back as the same instant (to the second), in
/// 20 characters so that text order is time order.
fn round_trips(t: DateTime<Utc>, input: &str) {
    let text = instant::format(t);
    assert_eq!(text.len(), 20, "{input:?} parsed to {t:?}, written {text:?}");
    assert_eq!(
        instant::parse(&text),
        Some(t.trunc_subsecs(0)),
        "{input:?} parsed to {t:?}, written {text:?}, which does not read back"
    );
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let zone: Tz = TZ_VARIANTS[usize::from(u16::from_le_bytes([data[0], data[1]])) % TZ_VARIANTS.len()];
    let rest = &data[2..];
    let s = String::from_utf8_lossy(rest);

    let parsed = instant::parse(&s);
    if let Some(t) = parsed {
        round_trips(t, &s);
    }

    let due = instant::parse_due(&s, zone);
    let trimmed = s.trim();
    if trimmed.len() == 10 {
        // Date only: 23:59:59 that day in the zone (or just after, past a gap).
        if let Some(t) = due {
            round_trips(t, &s);
            let date = NaiveDate::parse_from_str(trimmed, "%Y-%m-%d").expect("parse_due accepted it");
            let local = t.with_timezone(&zone).date_naive();
            assert!(
                local == date || date.succ_opt() == Some(local),
                "{s:?} in {zone}: due {t:?} is local day {local}"
            );
        }
    } else {
        assert_eq!(due, parsed, "{s:?}: parse_due differs from parse");
    }

    // Any wall time, anywhere in chrono's range: the instant returned is that
    // wall time, or the first one after it that exists (a gap is under a day).
    if rest.len() >= 12 {
        let secs = i64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
        let nanos = u32::from_le_bytes(rest[8..12].try_into().expect("4 bytes")) % 1_000_000_000;
        if let Some(local) = DateTime::from_timestamp(secs, nanos).map(|t| t.naive_utc()) {
            check_local(local, zone);
        }
    }
});

fn check_local(local: NaiveDateTime, zone: Tz) {
    let t = instant::local_to_utc(local, zone);
    let back = t.with_timezone(&zone).naive_local();
    assert!(
        back >= local && back - local <= Duration::days(1),
        "{local} in {zone} became {t:?}, which is {back} there"
    );
}
