//! When an overdue stage entry is alerted again. Re-arm times are fixed
//! slots, not "`rearm_hours` after the last alert": a run a little early
//! would otherwise pull every later alert earlier, day after day (a digest
//! at 09:05, 08:35, 08:05... under a cron every 5 minutes). The slots of an
//! entry start when it became overdue (`entered_at` + threshold) and repeat
//! every `rearm_hours`, on the local clock of the configured zone when that
//! is whole days (so a daily alert keeps its time of day across DST
//! changes); with `alert_at`, they are that local time of day, every
//! `rearm_hours` rounded to days. A run alerts an entry when a slot came
//! (up to a tolerance before the run) that no alert answered yet, and none
//! came in the last half period. Under a cron that runs more often than
//! every half period, an alert made less than half a period before a slot
//! answers it too: a first alert that catches up on yesterday's 11:00 slot
//! at 09:00 is followed by none at today's 11:00, nor later today, and the
//! next comes tomorrow at 11:00. Under a cron that runs less often (a daily
//! one at 19:30 for a 07:00 slot) each run's alert answers its own slot, so
//! the entry is alerted at every run.

use chrono::{DateTime, Days, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;

use crate::instant::local_to_utc;

/// How early a run may answer a slot: half the time since the previous run
/// of the job, at most 30 minutes, so a daily cron that starts a few seconds
/// earlier than yesterday never skips a day, and a frequent cron answers each
/// slot with the run nearest to it (its time of day moves by less than the
/// cron's interval).
pub const MAX_TOLERANCE: Duration = Duration::minutes(30);

/// How many of the job's latest runs tell its cron's interval (`Rearm::frequent`).
pub const CADENCE_RUNS: usize = 20;

/// The re-arm schedule of every entry of a run.
#[derive(Clone, Copy, Debug)]
pub struct Rearm {
    pub hours: u32,
    pub alert_at: Option<NaiveTime>,
    pub zone: Tz,
    pub tolerance: Duration,
    /// The job runs more often than every half period
    /// (`Rearm::runs_often`): an alert less than half a period before a
    /// slot answers it.
    pub frequent: bool,
}

impl Rearm {
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

    /// Whether the job, whose latest runs before this one at `now` started
    /// at `starts` (UTC, any order; `CADENCE_RUNS` of them are enough), runs
    /// more often than every half `period`: the median time between its
    /// runs, this one included, is shorter. The median, so that a run by
    /// hand between two of a daily cron's neither makes the cron frequent
    /// nor takes a day's alert. `false` with no earlier run.
    pub fn runs_often(starts: &[DateTime<Utc>], now: DateTime<Utc>, period: Duration) -> bool {
        let mut times: Vec<DateTime<Utc>> = starts.iter().copied().filter(|s| *s < now).collect();
        times.push(now);
        times.sort_unstable();
        let mut gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
        if gaps.is_empty() {
            return false;
        }
        gaps.sort_unstable();
        let n = gaps.len();
        let median = if n % 2 == 1 {
            gaps[n / 2]
        } else {
            (gaps[n / 2 - 1] + gaps[n / 2]) / 2
        };
        median < period / 2
    }

    /// The slot a run at `now` answers for an entry overdue since `anchor`,
    /// and the instant from which an alert counts as its answer, the
    /// earliest of: 30 minutes before the slot (an alert a daily run made a
    /// little early is not answered again by a later run); half the re-arm
    /// period before `now` (no entry comes again within half a period); and
    /// under a frequent cron (`frequent`), just under half a period before
    /// the slot (a catch-up alert at 09:00 answers the 11:00 slot of the
    /// same day, for every run of that day). `None`: no slot has come (with
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
        // "Less than half a period": from a second after it.
        let half = period / 2 - Duration::seconds(1);
        let mut from = (slot - MAX_TOLERANCE).min(now - half);
        if self.frequent {
            from = from.min(slot - half);
        }
        Some((slot, from))
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

    fn daily(tolerance_min: i64) -> Rearm {
        Rearm {
            hours: 24,
            alert_at: None,
            zone: PARIS,
            tolerance: Duration::minutes(tolerance_min),
            frequent: false,
        }
    }

    /// The alerts of one entry overdue since `anchor` (visible to runs from
    /// `visible`), daily re-arm in Paris, under a cron that ran at `runs`,
    /// as the job decides them (`retain_unalerted`).
    fn alerts(anchor: DateTime<Utc>, visible: DateTime<Utc>, runs: &[DateTime<Utc>]) -> Vec<DateTime<Utc>> {
        let mut alerts: Vec<DateTime<Utc>> = Vec::new();
        for (i, &now) in runs.iter().enumerate() {
            let earlier = &runs[i.saturating_sub(CADENCE_RUNS)..i];
            let r = Rearm {
                tolerance: Rearm::tolerance(now, earlier.last().copied()),
                frequent: Rearm::runs_often(earlier, now, Duration::hours(24)),
                ..daily(30)
            };
            if now < visible {
                continue;
            }
            if let Some((_, from)) = r.slot(anchor, now)
                && !alerts.iter().any(|a| *a >= from)
            {
                alerts.push(now);
            }
        }
        alerts
    }

    /// Runs every `step` from `from` to `to` (UTC), both included.
    fn every(step: Duration, from: &str, to: &str) -> Vec<DateTime<Utc>> {
        let (mut t, end) = (utc(from), utc(to));
        let mut runs = Vec::new();
        while t <= end {
            runs.push(t);
            t += step;
        }
        runs
    }

    fn at(times: &[&str]) -> Vec<DateTime<Utc>> {
        times.iter().map(|t| utc(t)).collect()
    }

    #[test]
    fn a_catch_up_is_followed_by_none_that_day_and_the_next_at_the_slot() {
        // Overdue since 11:00 CET, its row written the next day before
        // 09:00 (an hourly cron running all along).
        let runs = every(Duration::hours(1), "2026-01-15T00:00:00Z", "2026-01-18T23:00:00Z");
        let anchor = utc("2026-01-15T10:00:00Z");
        let visible = utc("2026-01-16T07:30:00Z");
        assert_eq!(
            alerts(anchor, visible, &runs),
            at(&["2026-01-16T08:00:00Z", "2026-01-17T10:00:00Z", "2026-01-18T10:00:00Z"])
        );
        // The machine off from 09:30 to 21:30: not a second alert that day.
        let mut off = runs.clone();
        off.retain(|t| *t <= utc("2026-01-16T08:30:00Z") || *t >= utc("2026-01-16T20:30:00Z"));
        assert_eq!(
            alerts(anchor, visible, &off),
            at(&["2026-01-16T08:00:00Z", "2026-01-17T10:00:00Z", "2026-01-18T10:00:00Z"])
        );
    }

    #[test]
    fn a_cron_every_five_minutes_alerts_a_late_entry_then_each_day_at_its_slot() {
        // A row written at 18:37 CET with an entry overdue since 07:00 CET:
        // 18:40, then 07:00 each day (18:40 is more than half a day before).
        let runs = every(Duration::minutes(5), "2026-01-15T00:00:00Z", "2026-01-18T12:00:00Z");
        let anchor = utc("2026-01-14T06:00:00Z");
        assert_eq!(
            alerts(anchor, utc("2026-01-16T17:37:00Z"), &runs),
            at(&["2026-01-16T17:40:00Z", "2026-01-17T06:00:00Z", "2026-01-18T06:00:00Z"])
        );
        // Exactly half a day before the slot is not less than half a day.
        let hourly = every(Duration::hours(1), "2026-01-15T00:00:00Z", "2026-01-18T12:00:00Z");
        assert_eq!(
            alerts(anchor, utc("2026-01-16T17:30:00Z"), &hourly),
            at(&["2026-01-16T18:00:00Z", "2026-01-17T06:00:00Z", "2026-01-18T06:00:00Z"])
        );
    }

    #[test]
    fn a_daily_cron_long_after_the_slot_alerts_every_day_even_with_a_run_by_hand() {
        // 07:00 CET slot, cron at 19:30 UTC.
        let anchor = utc("2026-01-14T06:00:00Z");
        let mut runs = every(Duration::days(1), "2026-01-15T19:30:00Z", "2026-01-19T19:30:00Z");
        let daily = at(&[
            "2026-01-15T19:30:00Z",
            "2026-01-16T19:30:00Z",
            "2026-01-17T19:30:00Z",
            "2026-01-18T19:30:00Z",
            "2026-01-19T19:30:00Z",
        ]);
        assert_eq!(alerts(anchor, anchor, &runs), daily);
        // One more run by hand at the slot takes no day's alert.
        runs.push(utc("2026-01-18T06:00:00Z"));
        runs.sort();
        assert_eq!(alerts(anchor, anchor, &runs), daily);
    }

    #[test]
    fn a_cron_twice_a_day_alerts_once_a_day() {
        // Runs at 07:20 and 19:30 CET; the entry's slot is 07:45 CET.
        let mut runs = every(Duration::days(1), "2026-01-15T06:20:00Z", "2026-01-19T06:20:00Z");
        runs.extend(every(Duration::days(1), "2026-01-15T18:30:00Z", "2026-01-19T18:30:00Z"));
        runs.sort();
        let got = alerts(utc("2026-01-14T06:45:00Z"), utc("2026-01-14T06:45:00Z"), &runs);
        let days: Vec<_> = got.iter().map(|t| t.date_naive()).collect();
        let mut unique = days.clone();
        unique.dedup();
        assert_eq!(days, unique, "once a day: {got:?}");
        assert_eq!(days.len(), 5, "every day: {got:?}");
    }

    #[test]
    fn a_daily_cron_a_few_seconds_earlier_each_day_skips_none() {
        let runs: Vec<_> = (0..5)
            .map(|d| utc("2026-01-15T06:00:00Z") + Duration::days(d) - Duration::seconds(5 * d))
            .collect();
        assert_eq!(
            alerts(utc("2026-01-14T06:00:00Z"), utc("2026-01-14T06:00:00Z"), &runs),
            runs
        );
    }

    #[test]
    fn a_cron_runs_often_by_the_median_time_between_its_runs() {
        let day = Duration::hours(24);
        let now = utc("2026-01-18T19:30:00Z");
        let daily = every(Duration::days(1), "2026-01-14T19:30:00Z", "2026-01-17T19:30:00Z");
        assert!(!Rearm::runs_often(&daily, now, day));
        let mut by_hand = daily.clone();
        by_hand.push(utc("2026-01-18T06:00:00Z"));
        assert!(!Rearm::runs_often(&by_hand, now, day), "one run by hand");
        let hourly = every(Duration::hours(1), "2026-01-18T08:30:00Z", "2026-01-18T18:30:00Z");
        assert!(Rearm::runs_often(&hourly, now, day));
        assert!(!Rearm::runs_often(&[], now, day), "no earlier run");
        assert!(
            !Rearm::runs_often(&at(&["2026-01-18T07:30:00Z"]), now, day),
            "twelve hours is half"
        );
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
        assert_eq!(from, utc("2026-01-16T17:59:51Z"), "less than half a day before the run");
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
