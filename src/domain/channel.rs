//! The channel a message goes out on: `email`, `whatsapp` or `sms`
//! (`rappel_deliveries.channel`, `log --channel`).

/// A delivery channel. Its text form is the lower-case name DESIGN §4 gives
/// `rappel_deliveries.channel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Channel {
    Email,
    Whatsapp,
    Sms,
}

impl Channel {
    /// Every channel, in the order listings use.
    pub const ALL: [Channel; 3] = [Channel::Email, Channel::Whatsapp, Channel::Sms];

    /// `"email"`, `"whatsapp"` or `"sms"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Whatsapp => "whatsapp",
            Channel::Sms => "sms",
        }
    }

    /// The transport that carries it, as `[email]` and `[whatsapp]` name
    /// them: `"email"`, or `"twilio"` for WhatsApp and SMS (one account:
    /// credentials it refuses stop both).
    pub fn transport(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Whatsapp | Channel::Sms => "twilio",
        }
    }
}

super::text_form!(Channel, "channel");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip_and_others_are_refused() {
        for c in Channel::ALL {
            assert_eq!(c.as_str().parse::<Channel>(), Ok(c));
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{c}\""));
        }
        let err = "Email".parse::<Channel>().unwrap_err();
        assert!(
            err.contains("\"Email\" is not a channel (expected email, whatsapp, sms)"),
            "{err}"
        );
        assert!("fax".parse::<Channel>().is_err());
    }
}
