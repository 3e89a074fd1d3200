//! Who plans a message (`rappel_deliveries.job`) and what one process run is
//! (`rappel_job_runs.job`, lock files, `[monitoring.ping_urls]` keys, log lines).

/// A job: it plans messages (or, for sync-attendance, punches) and delivers
/// its own. Its text form is its command name (DESIGN §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Job {
    CheckDelayAlerts,
    SendReports,
    SendReminders,
    SyncAttendance,
    /// `rappel test-email`: its one message is a delivery like any other.
    TestEmail,
}

impl Job {
    pub const ALL: [Job; 5] = [
        Job::CheckDelayAlerts,
        Job::SendReports,
        Job::SendReminders,
        Job::SyncAttendance,
        Job::TestEmail,
    ];

    /// Its command name: `"check-delay-alerts"`, `"send-reports"`,
    /// `"send-reminders"`, `"sync-attendance"` or `"test-email"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Job::CheckDelayAlerts => "check-delay-alerts",
            Job::SendReports => "send-reports",
            Job::SendReminders => "send-reminders",
            Job::SyncAttendance => "sync-attendance",
            Job::TestEmail => "test-email",
        }
    }
}

super::text_form!(Job, "job");

/// One process run, as `rappel_job_runs`, lock files, pings and log lines name
/// it: a job, or `deliver` (every job's due messages), `run-all`, `purge`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Run {
    Job(Job),
    Deliver,
    RunAll,
    Purge,
}

impl Run {
    /// The runs `[monitoring.ping_urls]` may name (`test-email` is not pinged).
    pub const PINGED: [Run; 7] = [
        Run::Job(Job::CheckDelayAlerts),
        Run::Job(Job::SendReports),
        Run::Job(Job::SendReminders),
        Run::Job(Job::SyncAttendance),
        Run::Deliver,
        Run::RunAll,
        Run::Purge,
    ];

    /// Its command name: a job's, or `"deliver"`, `"run-all"`, `"purge"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Run::Job(job) => job.as_str(),
            Run::Deliver => "deliver",
            Run::RunAll => "run-all",
            Run::Purge => "purge",
        }
    }

    /// The job whose messages the run delivers; `None`: every job's.
    pub fn job(self) -> Option<Job> {
        match self {
            Run::Job(job) => Some(job),
            _ => None,
        }
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a run goes: `--dry-run` (plan and print, write and send nothing) and
/// `--force` (ignore the waiting guards for one more try now).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunMode {
    pub dry_run: bool,
    pub force: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip() {
        for job in Job::ALL {
            assert_eq!(job.as_str().parse::<Job>(), Ok(job));
            assert_eq!(Run::Job(job).as_str(), job.as_str());
        }
        assert_eq!(Run::Deliver.job(), None);
        assert!("deliver".parse::<Job>().is_err(), "deliver is a run, not a job");
    }
}
