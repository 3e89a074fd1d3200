//! Exit codes (sysexits, DESIGN §2) and their precedence when several apply.

use std::fmt;

/// What a run ends with. The most serious wins: 70 > 74 > 78 > 65 > 75 > 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Ok,
    /// `stats --fail-above`: the failure rate is above the threshold.
    Threshold,
    Usage,
    DataErr,
    Software,
    IoErr,
    TempFail,
    Config,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Threshold => 1,
            Exit::Usage => 64,
            Exit::DataErr => 65,
            Exit::Software => 70,
            Exit::IoErr => 74,
            Exit::TempFail => 75,
            Exit::Config => 78,
        }
    }

    fn rank(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Threshold => 1,
            Exit::TempFail => 2,
            Exit::DataErr => 3,
            Exit::Config => 4,
            Exit::IoErr => 5,
            Exit::Software => 6,
            Exit::Usage => 7,
        }
    }

    /// The more serious of two outcomes.
    pub fn max(self, other: Exit) -> Exit {
        if other.rank() > self.rank() { other } else { self }
    }
}

/// An error that carries the exit code it must end the process with.
#[derive(Debug, thiserror::Error)]
#[error("{1:#}")]
pub struct Fatal(pub Exit, pub anyhow::Error);

/// Attaches an exit code to any error.
pub trait OrExit<T> {
    fn or_exit(self, code: Exit) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> OrExit<T> for Result<T, E> {
    fn or_exit(self, code: Exit) -> anyhow::Result<T> {
        self.map_err(|e| Fatal(code, e.into()).into())
    }
}

/// Builds a coded error from a message.
pub fn fail(code: Exit, msg: impl fmt::Display) -> anyhow::Error {
    Fatal(code, anyhow::anyhow!("{msg}")).into()
}

/// The exit code an error maps to: its own, or 70 for an unexpected one.
pub fn of_error(err: &anyhow::Error) -> Exit {
    // A coded error decides; any other database failure (locked past the busy
    // timeout, corrupt, unreadable) is 74.
    for e in err.chain() {
        if let Some(f) = e.downcast_ref::<Fatal>() {
            return f.0;
        }
        // The server refusing the role a right: the configuration (or the
        // role's grants) must change, as when it refuses the password.
        if e.downcast_ref::<crate::store::StoreError>()
            .is_some_and(|s| s.is_refused())
        {
            return Exit::Config;
        }
        if crate::store::is_store_error(e) {
            return Exit::IoErr;
        }
    }
    Exit::Software
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_follows_the_design() {
        let order = [
            Exit::Ok,
            Exit::TempFail,
            Exit::DataErr,
            Exit::Config,
            Exit::IoErr,
            Exit::Software,
        ];
        for (i, low) in order.iter().enumerate() {
            for high in &order[i..] {
                assert_eq!(low.max(*high), *high);
                assert_eq!(high.max(*low), *high);
            }
        }
    }

    #[test]
    fn coded_errors_keep_their_code_through_context() {
        let err: anyhow::Error = fail(Exit::Config, "bad key");
        let err = err.context("loading rappel.toml");
        assert_eq!(of_error(&err), Exit::Config);
        assert_eq!(of_error(&anyhow::anyhow!("boom")), Exit::Software);
    }
}
