//! Transports that carry one message to its recipient. A channel knows its
//! protocol and how its failures classify; it knows nothing about jobs.

pub mod email;
pub mod http;
pub mod ping;
mod resolve;
pub mod twilio;

use crate::domain::Channel;
use std::fmt;
use std::time::Duration;

/// Why a send failed, as the engine must act on it (DESIGN §5).
#[derive(Debug)]
pub enum SendError {
    /// The message can never go as it is (bad address, 5xx): `failed` at once.
    Permanent(String),
    /// Try again later (refused, timeout, 4xx, 429/5xx), no sooner than `retry_after`.
    Temporary {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The provider asked us to slow down (Twilio 429, error 20429): like
    /// `Temporary`, and nothing more goes through that transport this run.
    Throttled {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The server rejected our credentials: stop using the transport this run.
    Credentials(String),
}

impl SendError {
    pub fn temporary(reason: impl Into<String>) -> Self {
        SendError::Temporary {
            reason: reason.into(),
            retry_after: None,
        }
    }

    pub fn class(&self) -> &'static str {
        match self {
            SendError::Permanent(_) => "permanent",
            SendError::Temporary { .. } | SendError::Throttled { .. } => "temporary",
            SendError::Credentials(_) => "credentials",
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            SendError::Permanent(r) | SendError::Credentials(r) => r,
            SendError::Temporary { reason, .. } | SendError::Throttled { reason, .. } => reason,
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // On one line and masked, as it is stored (`mask::mask_line`): a
        // provider's answer with line breaks is one log line.
        write!(f, "{} ({})", crate::mask::mask_line(self.reason()), self.class())
    }
}

/// What the provider said about an accepted message.
#[derive(Debug, Default)]
pub struct Sent {
    /// Message-ID, Twilio SID...
    pub provider_ref: Option<String>,
}

/// A stored message as the engine hands it to a channel.
#[derive(Debug)]
pub struct Outgoing<'a> {
    pub kind: &'a str,
    pub dedupe_key: &'a str,
    pub recipient: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    pub html: Option<&'a str>,
    pub attachment: Option<OutgoingAttachment<'a>>,
    /// Channel extras (JSON), such as a WhatsApp template.
    pub payload: Option<&'a str>,
    /// When the whole exchange must be over (the claim's lease, less a
    /// margin), enforced by failing the connection; `None`: the channel's
    /// own budget alone.
    pub deadline: Option<std::time::Instant>,
    /// The recipient of the message the same worker sends next on this
    /// channel, when known: by SMTP, its commands go with this message's
    /// content (RFC 2920), saving a round trip; a next message that does
    /// not go after all costs its connection.
    pub then: Option<&'a str>,
}

/// A file to attach, read at send time.
#[derive(Debug)]
pub struct OutgoingAttachment<'a> {
    pub path: &'a str,
    pub name: &'a str,
    pub mime: &'a str,
}

/// Every channel this run can use; `None` where the configuration has none.
pub struct Channels {
    pub email: Option<email::EmailChannel>,
    /// WhatsApp and SMS.
    pub twilio: Option<twilio::TwilioChannel>,
    /// Transports the configuration names but that cannot be built (a secret
    /// that cannot be had...), with why: their messages wait.
    pub unavailable: Vec<(&'static str, String)>,
}

impl Channels {
    /// Builds the channels the configuration describes. One that cannot be
    /// built (a secret that cannot be had, a CA file that cannot be read) is
    /// left out, with the reason among the errors (exit 78): the others still
    /// carry their messages, and a job's messages for that channel wait.
    pub fn build(config: &crate::config::Config) -> (Channels, Vec<anyhow::Error>) {
        let mut errors = Vec::new();
        let mut unavailable = Vec::new();
        let mut built = |transport: &'static str, result: anyhow::Result<_>| match result {
            Ok(channel) => Some(channel),
            Err(err) => {
                unavailable.push((transport, format!("{err:#}")));
                errors.push(err);
                None
            }
        };
        let email = config.email.as_ref().and_then(|e| {
            built(
                "email",
                email::EmailChannel::new(e, config.delivery.redirect_to.clone()),
            )
        });
        let twilio = config.whatsapp.as_ref().and_then(|w| {
            crate::channels::twilio::TwilioChannel::new(w)
                .map_err(|err| {
                    unavailable.push(("twilio", format!("{err:#}")));
                    errors.push(err);
                })
                .ok()
        });
        (
            Channels {
                email,
                twilio,
                unavailable,
            },
            errors,
        )
    }

    /// The channels that can carry messages this run.
    pub fn configured(&self) -> Vec<Channel> {
        let mut names = Vec::new();
        if self.email.is_some() {
            names.push(Channel::Email);
        }
        if self.twilio.is_some() {
            names.extend([Channel::Whatsapp, Channel::Sms]);
        }
        names
    }

    /// How many messages may be in flight at once across the run.
    pub fn parallelism(&self) -> usize {
        self.email
            .as_ref()
            .map_or(1, |e| e.parallelism())
            .max(if self.twilio.is_some() { 4 } else { 1 })
    }

    /// How long one exchange on `channel`'s transport may take in all, when
    /// it bounds it itself (SMTP: `email::EmailChannel::budget`); zero
    /// otherwise.
    pub fn budget(&self, channel: Channel) -> std::time::Duration {
        match (channel, &self.email) {
            (Channel::Email, Some(email)) => email.budget(),
            _ => std::time::Duration::ZERO,
        }
    }

    pub fn send(
        &self,
        channel: Channel,
        m: &Outgoing<'_>,
        wall: chrono::DateTime<chrono::Utc>,
    ) -> Result<Sent, SendError> {
        match (channel, &self.email, &self.twilio) {
            (Channel::Email, Some(email), _) => email.send(m, wall),
            (Channel::Whatsapp | Channel::Sms, _, Some(twilio)) => twilio.send(channel, m),
            _ => Err(SendError::Credentials(format!("channel {channel} is not configured"))),
        }
    }

    /// Why `channel`'s transport cannot be used this run, if it is named in
    /// the configuration but could not be built.
    pub fn why_unavailable(&self, channel: Channel) -> Option<&str> {
        let transport = channel.transport();
        self.unavailable
            .iter()
            .find(|(t, _)| *t == transport)
            .map(|(_, why)| why.as_str())
    }
}
