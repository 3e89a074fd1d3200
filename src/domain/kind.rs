//! What a message is about (`rappel_deliveries.kind`, `--kind`, `muted_kinds`,
//! `disabled_kinds`, template names): every built-in kind.

/// A message kind. Its text form is the snake_case name templates,
/// configuration keys and `rappel_deliveries.kind` use (DESIGN §3, §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Kind {
    LoanCreated,
    LoanD2,
    LoanD1,
    LoanDue,
    LoanShortNotice,
    LoanOverdue,
    LoanReturned,
    SessionEve,
    SessionDay,
    Inactivity,
    WeeklyDigest,
    Manual,
    DelayAlert,
    Report,
    /// `rappel test-email`'s message.
    Test,
}

impl Kind {
    /// The loan kinds, in the order a loan meets them.
    pub const LOANS: [Kind; 7] = [
        Kind::LoanCreated,
        Kind::LoanD2,
        Kind::LoanD1,
        Kind::LoanDue,
        Kind::LoanShortNotice,
        Kind::LoanOverdue,
        Kind::LoanReturned,
    ];

    /// The revision-session kinds.
    pub const SESSIONS: [Kind; 2] = [Kind::SessionEve, Kind::SessionDay];

    /// send-reminders' kinds: the loans', the sessions', then a student's
    /// and the manual message.
    pub const REMINDERS: [Kind; 12] = join(
        &[
            &Kind::LOANS,
            &Kind::SESSIONS,
            &[Kind::Inactivity, Kind::WeeklyDigest, Kind::Manual],
        ],
        Kind::Manual,
    );

    /// Every kind: send-reminders', then the other jobs'.
    pub const ALL: [Kind; 15] = join(
        &[&Kind::REMINDERS, &[Kind::DelayAlert, Kind::Report, Kind::Test]],
        Kind::Test,
    );

    /// Its snake_case name (`"loan_d1"`, `"delay_alert"`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::LoanCreated => "loan_created",
            Kind::LoanD2 => "loan_d2",
            Kind::LoanD1 => "loan_d1",
            Kind::LoanDue => "loan_due",
            Kind::LoanShortNotice => "loan_short_notice",
            Kind::LoanOverdue => "loan_overdue",
            Kind::LoanReturned => "loan_returned",
            Kind::SessionEve => "session_eve",
            Kind::SessionDay => "session_day",
            Kind::Inactivity => "inactivity",
            Kind::WeeklyDigest => "weekly_digest",
            Kind::Manual => "manual",
            Kind::DelayAlert => "delay_alert",
            Kind::Report => "report",
            Kind::Test => "test",
        }
    }

    /// Whether send-reminders plans it.
    pub fn is_reminder(self) -> bool {
        Kind::REMINDERS.contains(&self)
    }

    /// send-reminders' kind names, comma-separated, for error messages.
    pub fn reminder_names() -> String {
        Kind::REMINDERS.map(Kind::as_str).join(", ")
    }
}

/// The sets one after the other, in an array of their total length `N`
/// (`fill` stands where they fall short, which a test rules out).
const fn join<const N: usize>(sets: &[&[Kind]], fill: Kind) -> [Kind; N] {
    let mut out = [fill; N];
    let (mut i, mut set) = (0, 0);
    while set < sets.len() {
        let mut k = 0;
        while k < sets[set].len() && i < N {
            out[i] = sets[set][k];
            i += 1;
            k += 1;
        }
        set += 1;
    }
    out
}

super::text_form!(Kind, "kind");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip_and_sets_hold() {
        for k in Kind::ALL {
            assert_eq!(k.as_str().parse::<Kind>(), Ok(k));
            let flag = <Kind as clap::ValueEnum>::to_possible_value(&k).unwrap();
            assert_eq!(flag.get_name(), k.as_str(), "the flag spells it as the table does");
        }
        assert!(
            Kind::LOANS
                .iter()
                .all(|k| k.as_str().starts_with("loan_") && k.is_reminder())
        );
        assert!(Kind::SESSIONS.iter().all(|k| k.is_reminder()));
        assert!(!Kind::DelayAlert.is_reminder() && !Kind::Report.is_reminder());
        assert_eq!(
            Kind::REMINDERS
                .iter()
                .filter(|k| k.as_str().starts_with("loan_"))
                .count(),
            Kind::LOANS.len()
        );
    }
}
