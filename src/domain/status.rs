//! Where a delivery stands (`rappel_deliveries.status`, `log --status`) and why one
//! failed or was cancelled (`rappel_deliveries.error_class`).

/// A delivery's status (DESIGN §4 and §9): `pending` until claimed,
/// `sending` under a lease, then `sent`, `failed` or `cancelled`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum DeliveryStatus {
    Pending,
    Sending,
    Sent,
    Failed,
    Cancelled,
}

impl DeliveryStatus {
    /// Every status, in a delivery's order of life.
    pub const ALL: [DeliveryStatus; 5] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Sending,
        DeliveryStatus::Sent,
        DeliveryStatus::Failed,
        DeliveryStatus::Cancelled,
    ];

    /// The lower-case name stored in `rappel_deliveries.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }
}

super::text_form!(DeliveryStatus, "delivery status");

/// Why a delivery failed or was cancelled (`rappel_deliveries.error_class`):
/// `permanent` (never retried), `temporary` (retried with backoff until
/// `max_attempts`), `operator` (cancelled by hand with `rappel cancel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    Permanent,
    Temporary,
    Operator,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 3] = [ErrorClass::Permanent, ErrorClass::Temporary, ErrorClass::Operator];

    /// The lower-case name stored in `rappel_deliveries.error_class`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Permanent => "permanent",
            ErrorClass::Temporary => "temporary",
            ErrorClass::Operator => "operator",
        }
    }
}

super::text_form!(ErrorClass, "error class");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip() {
        for s in DeliveryStatus::ALL {
            assert_eq!(s.as_str().parse::<DeliveryStatus>(), Ok(s));
            let flag = <DeliveryStatus as clap::ValueEnum>::to_possible_value(&s).unwrap();
            assert_eq!(flag.get_name(), s.as_str(), "the flag spells it as the table does");
        }
        for c in ErrorClass::ALL {
            assert_eq!(c.as_str().parse::<ErrorClass>(), Ok(c));
        }
        assert!("expired".parse::<DeliveryStatus>().is_err());
    }
}
