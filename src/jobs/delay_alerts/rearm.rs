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

/// How many runs before an alert's tell how often the cron ran then
/// (`Rearm::frequent_at`).
pub const CADENCE_RUNS: usize = 4;

/// How many runs before `Rearm::runs_since` to read: more than
/// `CADENCE_RUNS`, as runs at the same minute count as one.
pub const RUNS_BEFORE: usize = 40;

/// The re-arm schedule of every entry of a run.
#[derive(Clone, Copy, Debug)]
pub struct Rearm<'a> {
    pub hours: u32,
    pub alert_at: Option<NaiveTime>,
    pub zone: Tz,
    pub tolerance: Duration,
    /// When the job's runs started, this one included (`Rearm::times`):
    /// those since `Rearm::runs_since` and the `CADENCE_RUNS` before.
    pub runs: &'a [DateTime<Utc>],
}

/// The slot a run answers for an entry, and which alerts answer it
/// (`Rearm::slot`, `Answer::by`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    pub slot: DateTime<Utc>,
    /// An alert at or after this answers the slot.
    pub from: DateTime<Utc>,
    /// An alert at or after this, made under a cron that ran about every
    /// half period or more often (`Rearm::frequent_at`), answers it too.
    pub cover: DateTime<Utc>,
}

impl Answer {
    /// Whether an alert at `at` answers the slot, under `rearm`.
    pub fn by(&self, at: DateTime<Utc>, rearm: &Rearm<'_>) -> bool {
        at >= self.from || (at >= self.cover && rearm.frequent_at(at))
    }
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

    /// From when a run at `now` needs the job's runs: the earliest alert
    /// that may answer its slots (a period and a half before, and two hours
    /// more, as a local day may last 25 hours); `CADENCE_RUNS` more before
    /// it tell how often the cron ran then.
    pub fn runs_since(now: DateTime<Utc>, hours: u32, alert_at: Option<NaiveTime>) -> DateTime<Utc> {
        let period = Self::period(hours, alert_at);
        now - period - period / 2 - Duration::hours(2)
    }

    /// The job's runs as `Rearm::runs` holds them: `starts` (UTC, any
    /// order) before `now`, and `now`, ascending, runs less than a minute
    /// apart counted as one (several machines' crons at the same time).
    pub fn times(starts: &[DateTime<Utc>], now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut times: Vec<DateTime<Utc>> = starts.iter().copied().filter(|s| *s < now).collect();
        times.push(now);
        times.sort_unstable();
        times.dedup_by(|later, earlier| *later - *earlier < Duration::minutes(1));
        times
    }

    /// Whether the cron ran about every half period or more often (up to
    /// `MAX_TOLERANCE` more: a cron at 07:20 and 19:30 does) when it made
    /// the alert at `at`: the time between the alert's run and the one
    /// before (the one after, for a first run), and the median time
    /// between the runs around it (`CADENCE_RUNS` before, one after), are
    /// no longer. Taken at the alert, not now: a cron changed from hourly
    /// to daily is daily from its first daily alert, a machine off for a
    /// day after a catch-up does not make that catch-up a lone one, and a
    /// run by hand after a daily cron's alert does not change it. `false`
    /// when no other run is known.
    pub fn frequent_at(&self, at: DateTime<Utc>) -> bool {
        let runs = self.runs;
        // The alert's run: the last at or before it (a digest held by a
        // send window went after its run).
        let j = runs.partition_point(|r| *r <= at + Duration::minutes(1));
        let Some(j) = j.checked_sub(1) else {
            return false;
        };
        let around = &runs[j.saturating_sub(CADENCE_RUNS)..(j + 2).min(runs.len())];
        let mut gaps: Vec<Duration> = around.windows(2).map(|w| w[1] - w[0]).collect();
        let adjacent = match j.checked_sub(1) {
            Some(i) => runs[j] - runs[i],
            None => match runs.get(j + 1) {
                Some(next) => *next - runs[j],
                None => return false,
            },
        };
        gaps.sort_unstable();
        let n = gaps.len();
        let median = if n % 2 == 1 {
            gaps[n / 2]
        } else {
            (gaps[n / 2 - 1] + gaps[n / 2]) / 2
        };
        let period = Self::period(self.hours, self.alert_at);
        let often = period / 2 + MAX_TOLERANCE;
        adjacent <= often && median <= often
    }

    /// The slot a run at `now` answers for an entry overdue since `anchor`,
    /// and which alerts answer it (`Answer`): one at or after the earliest
    /// of just under 30 minutes before the slot (an alert a daily run made a
    /// little early is not answered again by a later run) and just under half the
    /// re-arm period before `now` (no entry comes again within half a
    /// period); and one just under half a period before the slot, made
    /// under a frequent cron (a catch-up alert at 09:00 answers the 11:00
    /// slot of the same day, for every run of that day). `None`: no slot
    /// has come (with `alert_at`, the first is that time of day, at or after
    /// `anchor`).
    pub fn slot(&self, anchor: DateTime<Utc>, now: DateTime<Utc>) -> Option<Answer> {
        if self.hours == 0 {
            // No re-arm wait: every run alerts.
            return Some(Answer {
                slot: now,
                from: now,
                cover: now,
            });
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
        // "Less than half a period": from a second after it. And a run
        // reaches a slot strictly before its tolerance ends: an alert
        // exactly `MAX_TOLERANCE` before a slot was for the slot before.
        let second = Duration::seconds(1);
        let half = period / 2 - second;
        Some(Answer {
            slot,
            from: (slot - MAX_TOLERANCE + second).min(now - half),
            cover: slot - half,
        })
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

    /// The alerts of one entry overdue since `anchor` (visible to runs from
    /// `visible`), daily re-arm in Paris, under a cron that ran at `runs`,
    /// as the job decides them (`retain_unalerted`).
    fn alerts(anchor: DateTime<Utc>, visible: DateTime<Utc>, runs: &[DateTime<Utc>]) -> Vec<DateTime<Utc>> {
        let mut alerts: Vec<DateTime<Utc>> = Vec::new();
        for (i, &now) in runs.iter().enumerate() {
            let times = Rearm::times(&runs[..i], now);
            let r = Rearm {
                tolerance: Rearm::tolerance(now, runs[..i].last().copied()),
                runs: &times,
                ..daily(30)
            };
            if now < visible {
                continue;
            }
            if let Some(answer) = r.slot(anchor, now)
                && !alerts.last().is_some_and(|a| answer.by(*a, &r))
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
    fn a_daily_cron_at_the_edge_of_the_tolerance_alerts_every_day() {
        // 06:30 CET for a 07:00 CET slot: exactly the tolerance before it.
        let runs = every(Duration::days(1), "2026-01-15T05:30:00Z", "2026-01-19T05:30:00Z");
        assert_eq!(
            alerts(utc("2026-01-14T06:00:00Z"), utc("2026-01-14T06:00:00Z"), &runs),
            runs
        );
    }

    #[test]
    fn several_machines_at_once_every_25_hours_alert_each_time() {
        let mut runs = Vec::new();
        for r in 0..5 {
            let t = utc("2026-01-15T06:00:00Z") + Duration::hours(25 * r);
            runs.extend((0..8).map(|i| t + Duration::milliseconds(30 * i)));
        }
        let got = alerts(utc("2026-01-14T06:00:00Z"), utc("2026-01-14T06:00:00Z"), &runs);
        assert_eq!(got.len(), 5, "{got:?}");
    }

    #[test]
    fn a_cron_changed_from_hourly_to_daily_skips_no_day() {
        let mut runs = every(Duration::hours(1), "2026-01-13T00:00:00Z", "2026-01-14T23:00:00Z");
        runs.extend(every(Duration::days(1), "2026-01-15T18:30:00Z", "2026-01-21T18:30:00Z"));
        let got = alerts(utc("2026-01-10T06:00:00Z"), utc("2026-01-10T06:00:00Z"), &runs);
        let daily: Vec<_> = got.iter().filter(|t| **t >= utc("2026-01-15T00:00:00Z")).collect();
        assert_eq!(daily.len(), 7, "{got:?}");
    }

    #[test]
    fn a_catch_up_under_a_cron_twice_a_day_is_the_day_s_only_alert() {
        // Runs at 07:20 and 19:30 CET; overdue since 09:00 CET, written after
        // the evening run.
        let mut runs = every(Duration::days(1), "2026-01-13T06:20:00Z", "2026-01-19T06:20:00Z");
        runs.extend(every(Duration::days(1), "2026-01-13T18:30:00Z", "2026-01-19T18:30:00Z"));
        runs.sort();
        let got = alerts(utc("2026-01-15T08:00:00Z"), utc("2026-01-15T19:00:00Z"), &runs);
        let days: Vec<_> = got.iter().map(|t| t.date_naive()).collect();
        let mut unique = days.clone();
        unique.dedup();
        assert_eq!(days, unique, "once a day: {got:?}");
        assert_eq!(days.len(), 4, "every day from the 16th: {got:?}");
    }

    #[test]
    fn runs_by_hand_on_the_day_of_install_take_no_day_from_a_daily_cron() {
        let mut runs = every(Duration::minutes(5), "2026-01-12T13:00:00Z", "2026-01-12T13:15:00Z");
        runs.extend(every(Duration::days(1), "2026-01-13T18:30:00Z", "2026-01-18T18:30:00Z"));
        let got = alerts(utc("2026-01-10T06:00:00Z"), utc("2026-01-10T06:00:00Z"), &runs);
        assert_eq!(got.len(), 7, "the first run by hand, then every day: {got:?}");
    }

    #[test]
    fn how_often_the_cron_ran_is_taken_at_the_alert() {
        let daily_runs = every(Duration::days(1), "2026-01-14T19:30:00Z", "2026-01-18T19:30:00Z");
        let times = Rearm::times(&daily_runs, utc("2026-01-19T07:00:00Z"));
        let r = Rearm {
            runs: &times,
            ..daily(30)
        };
        assert!(
            !r.frequent_at(utc("2026-01-18T19:30:00Z")),
            "daily, a run by hand after it"
        );
        let hourly = every(Duration::hours(1), "2026-01-18T08:00:00Z", "2026-01-18T18:00:00Z");
        let times = Rearm::times(&hourly, utc("2026-01-19T07:00:00Z"));
        let r = Rearm { runs: &times, ..r };
        assert!(r.frequent_at(utc("2026-01-18T09:00:00Z")));
        assert!(r.frequent_at(utc("2026-01-18T08:00:00Z")), "a first run: by the next");
        let twice = at(&["2026-01-17T06:20:00Z", "2026-01-17T18:30:00Z", "2026-01-18T06:20:00Z"]);
        let times = Rearm::times(&twice, utc("2026-01-18T18:30:00Z"));
        let r = Rearm { runs: &times, ..r };
        assert!(
            r.frequent_at(utc("2026-01-18T06:20:00Z")),
            "twice a day: about every half day"
        );
        let alone = Rearm::times(&[], utc("2026-01-18T18:30:00Z"));
        let r = Rearm { runs: &alone, ..r };
        assert!(!r.frequent_at(utc("2026-01-18T18:30:00Z")), "no other run");
        let same_minute = Rearm::times(
            &at(&["2026-01-17T19:30:00Z", "2026-01-17T19:30:20Z"]),
            utc("2026-01-18T19:30:00Z"),
        );
        assert_eq!(same_minute.len(), 2, "runs in one minute are one");
    }

    #[test]
    fn daily_slots_keep_the_local_time_of_day_across_dst() {
        let r = daily(5);
        let anchor = utc("2026-03-27T08:00:00Z"); // 09:00 CET
        assert_eq!(r.slot(anchor, utc("2026-03-27T07:50:00Z")).map(|s| s.slot), None);
        assert_eq!(
            r.slot(anchor, utc("2026-03-27T08:05:00Z")).map(|s| s.slot),
            Some(anchor)
        );
        // 09:00 CEST after the change is 07:00 UTC.
        assert_eq!(
            r.slot(anchor, utc("2026-03-30T07:00:00Z")).map(|s| s.slot),
            Some(utc("2026-03-30T07:00:00Z"))
        );
        assert_eq!(
            r.slot(anchor, utc("2026-03-30T06:50:00Z")).map(|s| s.slot),
            Some(utc("2026-03-29T07:00:00Z")),
            "ten minutes before is still yesterday's"
        );
    }

    #[test]
    fn a_run_a_little_early_answers_the_coming_slot() {
        let r = daily(30);
        let anchor = utc("2026-01-15T06:00:00Z"); // 07:00 CET
        let answer = r.slot(anchor, utc("2026-01-17T05:59:50Z")).unwrap();
        assert_eq!(answer.slot, utc("2026-01-17T06:00:00Z"));
        assert_eq!(
            answer.from,
            utc("2026-01-16T17:59:51Z"),
            "less than half a day before the run"
        );
        assert_eq!(
            answer.cover,
            utc("2026-01-16T18:00:01Z"),
            "less than half a day before the slot"
        );
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
            r.slot(anchor, utc("2026-01-16T06:00:00Z")).map(|s| s.slot),
            Some(utc("2026-01-16T06:00:00Z"))
        );
        let every_two_days = Rearm { hours: 48, ..r };
        assert_eq!(
            every_two_days.slot(anchor, utc("2026-01-17T12:00:00Z")).map(|s| s.slot),
            Some(utc("2026-01-16T06:00:00Z"))
        );
    }

    #[test]
    fn hourly_slots_and_no_rearm() {
        let r = Rearm { hours: 5, ..daily(0) };
        let anchor = utc("2026-01-15T08:00:00Z");
        assert_eq!(
            r.slot(anchor, utc("2026-01-15T18:30:00Z")).map(|s| s.slot),
            Some(utc("2026-01-15T18:00:00Z"))
        );
        assert_eq!(
            r.slot(anchor, utc("2026-01-15T18:00:00Z")).map(|s| s.slot),
            Some(utc("2026-01-15T13:00:00Z")),
            "strictly before the run (and its tolerance)"
        );
        let never = Rearm { hours: 0, ..daily(5) };
        let now = utc("2026-01-15T09:00:00Z");
        assert_eq!(
            never.slot(anchor, now),
            Some(Answer {
                slot: now,
                from: now,
                cover: now
            })
        );
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
