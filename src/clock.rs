//! The only place that reads the system clock: the run's `now` (which `--now`
//! may move) and the wall time that leases and mail headers use.

use chrono::{DateTime, SubsecRound, Utc};

/// The instant a run evaluates everything at, and the real time beside it.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    now: DateTime<Utc>,
}

#[allow(
    clippy::disallowed_methods,
    reason = "clock.rs is the one place that reads the system clock"
)]
impl Clock {
    /// `now` is the real time unless `--now` / `RAPPEL_NOW` gave one.
    pub fn new(now_override: Option<DateTime<Utc>>) -> Self {
        Clock {
            now: now_override.unwrap_or_else(Utc::now).trunc_subsecs(0),
        }
    }

    /// The instant due times, backoff and validity are computed from.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Real time: leases are held by a running process, so `--now` never moves them.
    pub fn wall(&self) -> DateTime<Utc> {
        wall_now()
    }
}

/// Real time, for what happens in the world rather than in the run (the
/// time a log line was written).
#[allow(
    clippy::disallowed_methods,
    reason = "clock.rs is the one place that reads the system clock"
)]
pub fn wall_now() -> DateTime<Utc> {
    Utc::now()
}
