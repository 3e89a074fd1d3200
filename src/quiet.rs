//! Quiet hours and send windows (`[delivery] quiet_hours`,
//! `[delivery.send_windows]`, DESIGN §9): when a message may go, in its
//! recipient's local time. A message held by them waits for the end of the
//! hold; it is not dropped while still valid.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;

use crate::domain::Kind;
use crate::instant::local_to_utc;

/// A daily stretch of local time, `start` included, `end` excluded; it
/// crosses midnight when `end` comes before `start` (`21:00-08:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl Period {
    /// `HH:MM-HH:MM`. Errors: the text is not that, or both times are the same.
    pub fn parse(text: &str) -> Result<Period, String> {
        let (a, b) = text
            .split_once('-')
            .ok_or_else(|| format!("{text:?} (expected HH:MM-HH:MM, such as \"21:00-08:00\")"))?;
        let time = |t: &str| {
            NaiveTime::parse_from_str(t.trim(), "%H:%M")
                .map_err(|_| format!("{text:?}: {:?} is not a time (expected HH:MM)", t.trim()))
        };
        let (start, end) = (time(a)?, time(b)?);
        if start == end {
            return Err(format!("{text:?}: it starts where it ends"));
        }
        Ok(Period { start, end })
    }

    fn contains(self, t: NaiveTime) -> bool {
        if self.start < self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }

    /// The instants (UTC) of the stretch that starts on local `date` in
    /// `zone`, each end read by DESIGN §1.4.
    fn on(self, date: NaiveDate, zone: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
        let end_date = if self.start < self.end {
            date
        } else {
            date + Duration::days(1)
        };
        (
            local_to_utc(date.and_time(self.start), zone),
            local_to_utc(end_date.and_time(self.end), zone),
        )
    }

    /// The end of the stretch `at` falls in, if it falls in one: the
    /// stretch is the span between its two ends as instants, so on the
    /// night clocks go back the hour lived twice is inside it or outside it
    /// as a whole.
    fn hold_end(self, at: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        let today = at.with_timezone(&zone).date_naive();
        [today - Duration::days(1), today].into_iter().find_map(|d| {
            let (start, end) = self.on(d, zone);
            (start <= at && at < end).then_some(end)
        })
    }
}

/// Days of the week and a stretch of each, not crossing midnight
/// (`mon-fri 08:00-18:00`; the days left out: every day).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    days: [bool; 7],
    hours: Period,
}

impl Window {
    /// `[days] HH:MM-HH:MM`, days as `mon-fri`, `sat,sun` or `mon,wed-fri`.
    /// Errors: a day or time that is not one, or hours crossing midnight.
    pub fn parse(text: &str) -> Result<Window, String> {
        let text = text.trim();
        let (days_text, hours_text) = match text.rsplit_once(' ') {
            Some((d, h)) => (Some(d.trim()), h),
            None => (None, text),
        };
        let hours = Period::parse(hours_text)?;
        if hours.end < hours.start {
            return Err(format!(
                "{text:?}: a send window does not cross midnight (write it as two kinds of hours, or use quiet_hours)"
            ));
        }
        let mut days = [days_text.is_none(); 7];
        for part in days_text.unwrap_or("").split(',').filter(|p| !p.trim().is_empty()) {
            let day = |d: &str| {
                d.trim()
                    .parse::<Weekday>()
                    .map_err(|_| format!("{text:?}: {:?} is not a day (mon, tue ... sun)", d.trim()))
            };
            let (first, last) = match part.split_once('-') {
                Some((a, b)) => (day(a)?, day(b)?),
                None => (day(part)?, day(part)?),
            };
            let mut d = first;
            loop {
                days[d.num_days_from_monday() as usize] = true;
                if d == last {
                    break;
                }
                d = d.succ();
            }
        }
        Ok(Window { days, hours })
    }

    fn contains(&self, weekday: Weekday, t: NaiveTime) -> bool {
        self.open_on(weekday) && self.hours.contains(t)
    }

    fn open_on(&self, weekday: Weekday) -> bool {
        self.days[weekday.num_days_from_monday() as usize]
    }

    /// When the window next opens after `at` (UTC), in `zone`; `None` when
    /// it is open at `at`, or opens on no day.
    fn next_opening(&self, at: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        let today = at.with_timezone(&zone).date_naive();
        let open_now = (-1..=1).any(|k| {
            let d = today + Duration::days(k);
            let (start, end) = self.hours.on(d, zone);
            self.open_on(d.weekday()) && start <= at && at < end
        });
        if open_now {
            return None;
        }
        (0..=8)
            .map(|k| today + Duration::days(k))
            .filter(|d| self.open_on(d.weekday()))
            .map(|d| self.hours.on(d, zone).0)
            .find(|start| *start > at)
    }
}

/// When messages may go: quiet hours for every kind, a window per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendPolicy {
    pub quiet_hours: Option<Period>,
    pub windows: BTreeMap<Kind, Window>,
}

impl SendPolicy {
    /// Whether the policy holds anything back at all.
    pub fn is_open(&self) -> bool {
        self.quiet_hours.is_none() && self.windows.is_empty()
    }

    /// The first instant (UTC) at or after `at` when a `kind` message to
    /// someone in `zone` may go: `at` itself when nothing holds it. The end of
    /// a hold is a local time; one that does not exist (spring forward) is
    /// the first instant after the gap, one that happens twice (fall back)
    /// the earlier (DESIGN §1.4).
    pub fn next_allowed(&self, kind: Kind, at: DateTime<Utc>, zone: Tz) -> DateTime<Utc> {
        let window = self.windows.get(&kind);
        let mut t = at;
        // Each step moves to the end of a hold; quiet hours and a window
        // alternate at most a few times a week (`check` refuses a window
        // that never opens outside quiet hours).
        for _ in 0..32 {
            let next = self
                .quiet_hours
                .and_then(|q| q.hold_end(t, zone))
                .or_else(|| window.and_then(|w| w.next_opening(t, zone)));
            match next {
                Some(next) => t = next.max(t + Duration::minutes(1)),
                None => return t,
            }
        }
        t
    }

    /// Refuses a send window that never opens outside quiet hours (every
    /// message of its kind would wait for ever): names the kind.
    pub fn check(&self) -> Result<(), String> {
        let (Some(q), false) = (self.quiet_hours, self.windows.is_empty()) else {
            return Ok(());
        };
        for (kind, w) in &self.windows {
            let opens = (0..7 * 24 * 60).any(|m| {
                let local = NaiveDate::from_ymd_opt(2026, 1, 5)
                    .unwrap_or_default()
                    .and_time(NaiveTime::MIN)
                    + Duration::minutes(m);
                w.contains(local.weekday(), local.time()) && !q.contains(local.time())
            });
            if !opens {
                return Err(format!(
                    "delivery.send_windows.{kind}: it is inside quiet_hours all along, so no {kind} message \
                     would ever go"
                ));
            }
        }
        Ok(())
    }
}

/// Quiet hours and a send window as they apply to one message: its kind and
/// its recipient's zone (`SendPolicy::hold_for`).
pub struct Hold<'p> {
    policy: &'p SendPolicy,
    kind: Kind,
    zone: Tz,
}

impl SendPolicy {
    /// What may hold a `kind` message to contact `contact`: the policy with
    /// the kind and the contact's zone (its `timezone` when that is a zone,
    /// else `configured`). `None` when the policy holds nothing back, or for
    /// a kind rappel does not know. Errors: reading the contact
    /// (`StoreError`).
    pub fn hold_for(
        &self,
        conn: &crate::store::Conn,
        kind: &str,
        contact: Option<i64>,
        configured: Tz,
    ) -> crate::store::Result<Option<Hold<'_>>> {
        let Some(kind) = kind.parse::<Kind>().ok().filter(|_| !self.is_open()) else {
            return Ok(None);
        };
        let zone = match contact {
            Some(id) => crate::store::deliveries::contact_zone(conn, id)?
                .and_then(|z| z.trim().parse::<Tz>().ok())
                .unwrap_or(configured),
            None => configured,
        };
        Ok(Some(Hold {
            policy: self,
            kind,
            zone,
        }))
    }
}

impl Hold<'_> {
    /// The first instant (UTC) at or after `at` when the message may go
    /// (`SendPolicy::next_allowed`).
    pub fn next_allowed(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        self.policy.next_allowed(self.kind, at, self.zone)
    }

    /// When the message may go, if not at `at`.
    pub fn until(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let until = self.next_allowed(at);
        (until > at).then_some(until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn quiet(text: &str) -> SendPolicy {
        SendPolicy {
            quiet_hours: Some(Period::parse(text).unwrap()),
            windows: BTreeMap::new(),
        }
    }

    const PARIS: Tz = chrono_tz::Europe::Paris;

    #[test]
    fn quiet_hours_hold_a_message_until_they_end_in_the_recipients_zone() {
        let p = quiet("21:00-08:00");
        let k = Kind::LoanD1;
        // 20:59 Paris (CET, UTC+1) goes; 21:00 waits for 08:00 the next day.
        assert_eq!(
            p.next_allowed(k, utc("2026-03-10T19:59:00Z"), PARIS),
            utc("2026-03-10T19:59:00Z")
        );
        assert_eq!(
            p.next_allowed(k, utc("2026-03-10T20:00:00Z"), PARIS),
            utc("2026-03-11T07:00:00Z")
        );
        // 02:00 waits for 08:00 the same day; 08:00 goes.
        assert_eq!(
            p.next_allowed(k, utc("2026-03-11T01:00:00Z"), PARIS),
            utc("2026-03-11T07:00:00Z")
        );
        assert_eq!(
            p.next_allowed(k, utc("2026-03-11T07:00:00Z"), PARIS),
            utc("2026-03-11T07:00:00Z")
        );
        // In New York it is 16:00: it goes.
        let ny = chrono_tz::America::New_York;
        assert_eq!(
            p.next_allowed(k, utc("2026-03-10T20:00:00Z"), ny),
            utc("2026-03-10T20:00:00Z")
        );
        // A stretch within one day.
        let lunch = quiet("12:00-14:00");
        assert_eq!(
            lunch.next_allowed(k, utc("2026-03-10T11:30:00Z"), PARIS),
            utc("2026-03-10T13:00:00Z")
        );
    }

    #[test]
    fn a_hold_ending_in_a_dst_gap_or_repeat_ends_once() {
        // Paris springs forward on 29 March 2026: 02:00-03:00 does not exist.
        let p = quiet("22:00-02:30");
        assert_eq!(
            p.next_allowed(Kind::LoanD1, utc("2026-03-28T22:00:00Z"), PARIS),
            utc("2026-03-29T01:00:00Z"),
            "02:30 does not exist: 03:00 CEST"
        );
        // And falls back on 25 October 2026: 02:30 happens twice; the earlier.
        assert_eq!(
            p.next_allowed(Kind::LoanD1, utc("2026-10-24T21:00:00Z"), PARIS),
            utc("2026-10-25T00:30:00Z"),
        );
    }

    #[test]
    fn the_hour_lived_twice_is_inside_quiet_hours_or_outside_as_a_whole() {
        // Paris, 25 October 2026: 02:00-03:00 is lived twice (00:00-01:00Z
        // in summer time, 01:00-02:00Z in winter time).
        let p = quiet("02:30-07:00");
        // From the earlier 02:30 (00:30Z) to 07:00 CET (06:00Z), all held,
        // the second 02:10 (01:10Z) too.
        for t in ["2026-10-25T00:45:00Z", "2026-10-25T01:10:00Z", "2026-10-25T01:40:00Z"] {
            assert_eq!(
                p.next_allowed(Kind::LoanD1, utc(t), PARIS),
                utc("2026-10-25T06:00:00Z"),
                "{t}"
            );
        }
        assert_eq!(
            p.next_allowed(Kind::LoanD1, utc("2026-10-25T00:20:00Z"), PARIS),
            utc("2026-10-25T00:20:00Z"),
            "02:20 summer time, before the earlier 02:30"
        );
        // Ending at 02:30: the earlier one; the second 02:10 is past it.
        let p = quiet("22:00-02:30");
        assert_eq!(
            p.next_allowed(Kind::LoanD1, utc("2026-10-25T01:10:00Z"), PARIS),
            utc("2026-10-25T01:10:00Z")
        );
    }

    #[test]
    fn a_window_inside_quiet_hours_is_refused() {
        let mut p = quiet("21:00-08:00");
        p.windows.insert(Kind::Manual, Window::parse("22:00-23:00").unwrap());
        assert!(p.check().unwrap_err().contains("send_windows.manual"));
        p.windows.insert(Kind::Manual, Window::parse("07:00-09:00").unwrap());
        assert_eq!(p.check(), Ok(()));
    }

    #[test]
    fn a_kinds_send_window_holds_it_until_it_opens() {
        let mut p = quiet("21:00-08:00");
        p.windows
            .insert(Kind::DelayAlert, Window::parse("mon-fri 08:00-18:00").unwrap());
        // Friday 18:30 Paris: Monday 08:00.
        assert_eq!(
            p.next_allowed(Kind::DelayAlert, utc("2026-03-13T17:30:00Z"), PARIS),
            utc("2026-03-16T07:00:00Z")
        );
        // Tuesday 07:00: 08:00 the same day (quiet hours and window agree).
        assert_eq!(
            p.next_allowed(Kind::DelayAlert, utc("2026-03-10T06:00:00Z"), PARIS),
            utc("2026-03-10T07:00:00Z")
        );
        // Other kinds follow the quiet hours alone.
        assert_eq!(
            p.next_allowed(Kind::LoanD1, utc("2026-03-14T10:00:00Z"), PARIS),
            utc("2026-03-14T10:00:00Z")
        );
        let w = Window::parse("sat,sun 10:00-12:00").unwrap();
        assert!(w.contains(Weekday::Sun, NaiveTime::from_hms_opt(11, 0, 0).unwrap()));
        assert!(!w.contains(Weekday::Mon, NaiveTime::from_hms_opt(11, 0, 0).unwrap()));
        assert!(
            Window::parse("09:00-17:00")
                .unwrap()
                .contains(Weekday::Wed, NaiveTime::from_hms_opt(9, 0, 0).unwrap())
        );
    }

    #[test]
    fn bad_periods_and_windows_say_what_is_wrong() {
        for (text, says) in [
            ("21:00", "expected HH:MM-HH:MM"),
            ("21h-08:00", "\"21h\" is not a time"),
            ("08:00-08:00", "starts where it ends"),
        ] {
            let err = Period::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
        for (text, says) in [
            ("mon-fry 08:00-18:00", "\"fry\" is not a day"),
            ("mon-fri 18:00-08:00", "does not cross midnight"),
        ] {
            let err = Window::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
