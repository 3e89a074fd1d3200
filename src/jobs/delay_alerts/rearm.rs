//! When an overdue stage entry is alerted again. Re-arm times are fixed
//! slots, not "`rearm_hours` after the last alert": a run a little early
//! would otherwise pull every later alert earlier, day after day (a digest
//! at 09:05, 08:35, 08:05... under a cron every 5 minutes). The slots of an
//! entry start when it became overdue (`entered_at` + threshold) and repeat
//! every `rearm_hours`, on the local clock of the configured zone when that
//! is whole days (so a daily alert keeps its time of day across DST
//! changes); with `alert_at`, they are that local time of day, every
//! `rearm_hours` rounded to days. A run alerts an entry when a slot came
//! (up to a tolerance before the run) that no alert answered yet. An alert
//! made within half a period before the first run that reached a slot
//! answers that slot too: a first alert that catches up on yesterday's
//! 11:00 slot at 09:00 is followed by none at today's 11:00, nor later
//! today, and the next comes tomorrow at 11:00. Measuring from that first
//! run, not from the run at hand, keeps the verdict the same for every
//! later run of the period.

use chrono::{DateTime, Days, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;

use crate::instant::local_to_utc;

/// How early a run may answer a slot: half the time since the previous run
/// of the job, at most 30 minutes, so a daily cron that starts a few seconds
/// earlier than yesterday never skips a day, and a frequent cron answers each
/// slot with the run nearest to it (its time of day moves by less than the
/// cron's interval).
pub const MAX_TOLERANCE: Duration = Duration::minutes(30);

/// The re-arm schedule of every entry of a run.
#[derive(Clone, Copy, Debug)]
pub struct Rearm<'a> {
    pub hours: u32,
    pub alert_at: Option<NaiveTime>,
    pub zone: Tz,
    pub tolerance: Duration,
    /// When the job's earlier runs started (UTC, ascending), those since
    /// `Rearm::runs_since` at least; older ones are not needed.
    pub runs: &'a [DateTime<Utc>],
}

impl Rearm<'_> {
    /// The tolerance for a run at `now` whose job last ran at `previous`.
    pub fn tolerance(now: DateTime<Utc>, previous: Option<DateTime<Utc>>) -> Duration {
        match previous {
            Some(p) if p < now => ((now - p) / 2).min(MAX_TOLERANCE),
            _ => MAX_TOLERANCE,
        }
    }

    /// The time between two slots: `hours`, or with `alert_at` whole days
    /// (`hours` rounded up, one at least).
    pub fn period(hours: u32, alert_at: Option<NaiveTime>) -> Duration {
        match alert_at {
            Some(_) => Duration::days(i64::from(hours.div_ceil(24).max(1))),
            None => Duration::hours(i64::from(hours)),
        }
    }

    /// From when a run at `now` needs the job's earlier runs
    /// (`Rearm::runs`): a period and `MAX_TOLERANCE` before it, and two
    /// hours more, as a local day may last 25 hours (DST).
    pub fn runs_since(now: DateTime<Utc>, hours: u32, alert_at: Option<NaiveTime>) -> DateTime<Utc> {
        now - Self::period(hours, alert_at) - MAX_TOLERANCE - Duration::hours(2)
    }

    /// When the first run that could answer `slot` started: the earliest
    /// of `runs` at or after `MAX_TOLERANCE` before it, else `now` (this run).
    fn first_run_for(&self, slot: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
        let from = slot - MAX_TOLERANCE;
        let i = self.runs.partition_point(|r| *r < from);
        self.runs.get(i).copied().filter(|r| *r < now).unwrap_or(now)
    }

    /// The slot a run at `now` answers for an entry overdue since `anchor`,
    /// and the instant from which an alert counts as its answer: 30 minutes
    /// before the slot (an alert a daily run made a little early is not
    /// answered again by a later run), or half the re-arm period before the
    /// first run that reached the slot (`runs`, else `now`) when that is
    /// earlier (a catch-up alert at 09:00 answers the 11:00 slot of the same
    /// day, for every run of that day; a daily cron at 19:30 for a 07:00
    /// slot still alerts every day). `None`: no slot has come (with
    /// `alert_at`, the first is that time of day, at or after `anchor`).
    pub fn slot(&self, anchor: DateTime<Utc>, now: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if self.hours == 0 {
            // No re-arm wait: every run alerts.
            return Some((now, now));
        }
        let before = now + self.tolerance;
        let period = Self::period(self.hours, self.alert_at);
        let slot = match self.alert_at {
            Some(at) => {
                let mut first = anchor.with_timezone(&self.zone).date_naive();
                if local_to_utc(first.and_time(at), self.zone) < anchor {
                    first = first.succ_opt()?;
                }
                let days = u64::from(self.hours.div_ceil(24).max(1));
                self.latest_daily(first, at, days, before)?
            }
            None if self.hours.is_multiple_of(24) => {
                let local = anchor.with_timezone(&self.zone).naive_local();
                self.latest_daily(local.date(), local.time(), u64::from(self.hours / 24), before)?
            }
            None => {
                let period = Duration::hours(i64::from(self.hours));
                if before <= anchor {
                    return None;
                }
                let n = (before - anchor).num_seconds().saturating_sub(1) / period.num_seconds();
                anchor + period * i32::try_from(n).ok()?
            }
        };
        let first_run = self.first_run_for(slot, now);
        Some((slot, (slot - MAX_TOLERANCE).min(first_run - period / 2)))
    }

    /// The latest of `time` on `first` + k × `days` days (local), strictly
    /// before `before`.
    fn latest_daily(
        &self,
        first: NaiveDate,
        time: NaiveTime,
        days: u64,
        before: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let at = |date: NaiveDate| local_to_utc(date.and_time(time), self.zone);
        let today = before.with_timezone(&self.zone).date_naive();
        let elapsed = u64::try_from((today - first).num_days()).ok()?;
        let mut date = first.checked_add_days(Days::new(elapsed / days * days))?;
        while at(date) >= before {
            date = date.checked_sub_days(Days::new(days))?;
            if date < first {
                return None;
            }
        }
        Some(at(date))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        crate::instant::parse(s).unwrap()
    }

    const PARIS: Tz = chrono_tz::Europe::Paris;

    fn daily(tolerance_min: i64) -> Rearm<'static> {
        Rearm {
            hours: 24,
            alert_at: None,
            zone: PARIS,
            tolerance: Duration::minutes(tolerance_min),
            runs: &[],
        }
    }

    #[test]
    fn daily_slots_keep_the_local_time_of_day_across_dst() {
        let r = daily(5);
        let anchor = utc("2026-03-27T08:00:00Z"); // 09:00 CET
        assert_eq!(r.slot(anchor, utc("2026-03-27T07:50:00Z")).map(|s| s.0), None);
        assert_eq!(r.slot(anchor, utc("2026-03-27T08:05:00Z")).map(|s| s.0), Some(anchor));
        // 09:00 CEST after the change is 07:00 UTC.
        assert_eq!(
            r.slot(anchor, utc("2026-03-30T07:00:00Z")).map(|s| s.0),
            Some(utc("2026-03-30T07:00:00Z"))
        );
        assert_eq!(
            r.slot(anchor, utc("2026-03-30T06:50:00Z")).map(|s| s.0),
            Some(utc("2026-03-29T07:00:00Z")),
            "ten minutes before is still yesterday's"
        );
    }

    #[test]
    fn a_run_a_little_early_answers_the_coming_slot() {
        let r = daily(30);
        let anchor = utc("2026-01-15T06:00:00Z"); // 07:00 CET
        let (slot, from) = r.slot(anchor, utc("2026-01-17T05:59:50Z")).unwrap();
        assert_eq!(slot, utc("2026-01-17T06:00:00Z"));
        assert_eq!(from, utc("2026-01-16T17:59:50Z"), "half a day before the run");
    }

    #[test]
    fn a_catch_up_alert_answers_the_slot_that_comes_the_same_morning() {
        let r = daily(30);
        // Overdue since 11:00 CET; the first run is at 09:00 the next day.
        let anchor = utc("2026-01-15T10:00:00Z");
        let (slot, from) = r.slot(anchor, utc("2026-01-16T08:00:00Z")).unwrap();
        assert_eq!(slot, anchor, "yesterday's slot, caught up");
        assert!(from <= anchor, "no alert yet: this one goes");
        // At 11:00 the day's slot has come, but the 09:00 alert is nearest to it.
        let (slot, from) = r.slot(anchor, utc("2026-01-16T10:00:00Z")).unwrap();
        assert_eq!(slot, utc("2026-01-16T10:00:00Z"));
        assert!(from <= utc("2026-01-16T08:00:00Z"), "the 09:00 alert answers it");
        // The next day's slot is not answered by it.
        let (_, from) = r.slot(anchor, utc("2026-01-17T10:00:00Z")).unwrap();
        assert!(from > utc("2026-01-16T08:00:00Z"));
    }

    #[test]
    fn a_catch_up_alert_answers_the_day_s_slot_for_every_later_run_of_the_day() {
        // Overdue since 11:00 CET; an hourly cron from 09:00 the next day.
        let anchor = utc("2026-01-15T10:00:00Z");
        let alert = utc("2026-01-16T08:00:00Z");
        let hourly: Vec<DateTime<Utc>> = (0..40).map(|h| alert + Duration::hours(h)).collect();
        let answered = |now: DateTime<Utc>| {
            let runs: Vec<_> = hourly.iter().copied().filter(|r| *r < now).collect();
            let r = Rearm {
                runs: &runs,
                ..daily(30)
            };
            let (slot, from) = r.slot(anchor, now).unwrap();
            (slot, alert >= from)
        };
        for h in 2..=13 {
            let (slot, done) = answered(alert + Duration::hours(h));
            assert_eq!(slot, utc("2026-01-16T10:00:00Z"));
            assert!(
                done,
                "{h} hours after the 09:00 alert, the day's 11:00 slot is answered"
            );
        }
        let (slot, done) = answered(utc("2026-01-17T10:00:00Z"));
        assert_eq!(slot, utc("2026-01-17T10:00:00Z"));
        assert!(!done, "the next day's slot is not");
        // Without the day's runs known (purged), the run at hand decides.
        let r = Rearm { runs: &[], ..daily(30) };
        let (_, from) = r.slot(anchor, utc("2026-01-16T21:00:00Z")).unwrap();
        assert!(from > alert);
    }

    #[test]
    fn the_first_run_of_a_slot_is_the_earliest_within_the_tolerance_before_it() {
        let runs = [
            utc("2026-01-16T05:00:00Z"),
            utc("2026-01-16T05:31:00Z"),
            utc("2026-01-16T06:10:00Z"),
        ];
        let r = Rearm {
            runs: &runs,
            ..daily(30)
        };
        let slot = utc("2026-01-16T06:00:00Z");
        let now = utc("2026-01-16T07:00:00Z");
        assert_eq!(r.first_run_for(slot, now), runs[1]);
        assert_eq!(
            r.first_run_for(utc("2026-01-16T06:45:00Z"), now),
            now,
            "none yet: this run"
        );
        assert_eq!(r.first_run_for(slot, runs[1]), runs[1], "this run, recorded at now");
        assert_eq!(
            r.first_run_for(slot, utc("2026-01-16T05:20:00Z")),
            utc("2026-01-16T05:20:00Z"),
            "runs after now do not count"
        );
    }

    #[test]
    fn a_daily_cron_long_after_the_slot_alerts_every_day() {
        let yesterday = [utc("2026-01-16T19:30:00Z")];
        let r = Rearm {
            runs: &yesterday,
            ..daily(30)
        };
        let anchor = utc("2026-01-15T06:00:00Z"); // 07:00 CET
        // Run every day at 19:30 UTC: yesterday's alert does not answer today's slot.
        let (slot, from) = r.slot(anchor, utc("2026-01-17T19:30:00Z")).unwrap();
        assert_eq!(slot, utc("2026-01-17T06:00:00Z"));
        assert!(from > utc("2026-01-16T19:30:00Z"), "{from}");
    }

    #[test]
    fn alert_at_is_a_local_time_of_day_from_the_day_after_when_past() {
        let r = Rearm {
            alert_at: NaiveTime::from_hms_opt(7, 0, 0),
            ..daily(5)
        };
        let anchor = utc("2026-01-15T08:13:00Z"); // 09:13 CET: first at 07:00 the next day
        assert_eq!(r.slot(anchor, utc("2026-01-15T20:00:00Z")), None);
        assert_eq!(
            r.slot(anchor, utc("2026-01-16T06:00:00Z")).map(|s| s.0),
            Some(utc("2026-01-16T06:00:00Z"))
        );
        let every_two_days = Rearm { hours: 48, ..r };
        assert_eq!(
            every_two_days.slot(anchor, utc("2026-01-17T12:00:00Z")).map(|s| s.0),
            Some(utc("2026-01-16T06:00:00Z"))
        );
    }

    #[test]
    fn hourly_slots_and_no_rearm() {
        let r = Rearm { hours: 5, ..daily(0) };
        let anchor = utc("2026-01-15T08:00:00Z");
        assert_eq!(
            r.slot(anchor, utc("2026-01-15T18:30:00Z")).map(|s| s.0),
            Some(utc("2026-01-15T18:00:00Z"))
        );
        assert_eq!(
            r.slot(anchor, utc("2026-01-15T18:00:00Z")).map(|s| s.0),
            Some(utc("2026-01-15T13:00:00Z")),
            "strictly before the run (and its tolerance)"
        );
        let never = Rearm { hours: 0, ..daily(5) };
        let now = utc("2026-01-15T09:00:00Z");
        assert_eq!(never.slot(anchor, now), Some((now, now)));
    }

    #[test]
    fn tolerance_is_half_the_gap_at_most_thirty_minutes() {
        let now = utc("2026-01-15T09:00:00Z");
        assert_eq!(
            Rearm::tolerance(now, Some(utc("2026-01-15T08:55:00Z"))),
            Duration::seconds(150)
        );
        assert_eq!(Rearm::tolerance(now, Some(utc("2026-01-14T09:00:00Z"))), MAX_TOLERANCE);
        assert_eq!(Rearm::tolerance(now, None), MAX_TOLERANCE);
    }
}
