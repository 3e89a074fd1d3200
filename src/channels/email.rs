//! Email through lettre: SMTP (pooled, `connections` used in parallel),
//! sendmail, or a folder of `.eml` files. The MIME is built once per message and
//! its Message-ID derives from the de-duplication key, so a retry carries the
//! same Message-ID.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use chrono::{DateTime, Utc};
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, Message, SendmailTransport, SmtpTransport, Transport};
use sha2::{Digest, Sha256};

use super::{Outgoing, SendError, Sent};
use crate::config::{EmailConfig, EmailTransport, Security, SmtpConfig};
use crate::exit::{Exit, OrExit};

enum Carrier {
    Smtp(Box<SmtpTransport>),
    Sendmail(SendmailTransport),
    File(PathBuf),
}

pub struct EmailChannel {
    from: Mailbox,
    carrier: Carrier,
    redirect_to: Option<Address>,
    parallelism: usize,
}

impl EmailChannel {
    /// Builds the transport; a transport that cannot be built is a configuration error.
    pub fn new(cfg: &EmailConfig, redirect_to: Option<Address>) -> anyhow::Result<Self> {
        let (carrier, parallelism) = match &cfg.transport {
            EmailTransport::Smtp(smtp) => (
                Carrier::Smtp(Box::new(smtp_transport(smtp).or_exit(Exit::Config)?)),
                smtp.connections as usize,
            ),
            EmailTransport::Sendmail { command } => {
                if command.components().count() > 1 && !command.is_file() {
                    return Err(crate::exit::fail(
                        Exit::Config,
                        format!("email.sendmail_command: {} does not exist", command.display()),
                    ));
                }
                (Carrier::Sendmail(SendmailTransport::new_with_command(command)), 2)
            }
            EmailTransport::File { dir } => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("email.outbox_dir: cannot create {}", dir.display()))
                    .or_exit(Exit::Config)?;
                (Carrier::File(dir.clone()), 1)
            }
        };
        Ok(EmailChannel {
            from: cfg.from.clone(),
            carrier,
            redirect_to,
            parallelism,
        })
    }

    /// How many messages may be in flight at once.
    pub fn parallelism(&self) -> usize {
        self.parallelism.max(1)
    }

    /// Connects to the SMTP server (and authenticates) without sending.
    pub fn test_connection(&self) -> Result<(), SendError> {
        match &self.carrier {
            Carrier::Smtp(t) => match t.test_connection() {
                Ok(true) => Ok(()),
                Ok(false) => Err(SendError::temporary("the SMTP server did not answer NOOP")),
                Err(e) => Err(classify_smtp(&e)),
            },
            _ => Ok(()),
        }
    }

    pub fn send(&self, m: &Outgoing<'_>, wall: DateTime<Utc>) -> Result<Sent, SendError> {
        let (message, message_id) = self.build(m, wall)?;
        let bytes = message.formatted();
        match &self.carrier {
            Carrier::Smtp(t) => {
                t.send_raw(message.envelope(), &bytes).map_err(|e| classify_smtp(&e))?;
            }
            Carrier::Sendmail(t) => t
                .send_raw(message.envelope(), &bytes)
                .map_err(|e| SendError::temporary(format!("sendmail failed: {e}")))?,
            Carrier::File(dir) => write_eml(dir, m, &message_id, &bytes)?,
        }
        Ok(Sent {
            provider_ref: Some(message_id),
        })
    }

    fn build(&self, m: &Outgoing<'_>, wall: DateTime<Utc>) -> Result<(Message, String), SendError> {
        let to: Address = m
            .recipient
            .trim()
            .parse()
            .map_err(|e| SendError::Permanent(format!("invalid email address {:?}: {e}", m.recipient)))?;
        let message_id = message_id(m.dedupe_key, self.from.email.domain());
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(m.subject)
            .message_id(Some(message_id.clone()))
            .date(SystemTime::from(wall))
            .header(RappelKind(m.kind.to_string()));
        builder = match &self.redirect_to {
            Some(redirect) => builder
                .to(Mailbox::new(None, redirect.clone()))
                .header(OriginalTo(to.to_string())),
            None => builder.to(Mailbox::new(None, to)),
        };
        let text = SinglePart::builder().header(ContentType::TEXT_PLAIN).body(crlf(m.body));
        let message = match m.html {
            Some(html) => builder.multipart(
                MultiPart::alternative()
                    .singlepart(text)
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(crlf(html))),
            ),
            None => builder.singlepart(text),
        }
        .map_err(|e| SendError::Permanent(format!("cannot build the message: {e}")))?;
        Ok((message, message_id))
    }
}

/// CRLF line endings, in one pass. lettre converts bare LF itself, but by
/// inserting into the string once per line, which is quadratic: a digest of
/// thousands of lines would take most of a run.
fn crlf(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 32);
    let mut prev = '\0';
    for c in s.chars() {
        if c == '\n' && prev != '\r' {
            out.push('\r');
        }
        out.push(c);
        prev = c;
    }
    out
}

fn smtp_transport(cfg: &SmtpConfig) -> anyhow::Result<SmtpTransport> {
    let mut builder = SmtpTransport::builder_dangerous(cfg.host.as_str())
        .port(cfg.port)
        .timeout(Some(cfg.timeout))
        .pool_config(
            PoolConfig::new()
                .max_size(cfg.connections)
                .idle_timeout(Duration::from_secs(60)),
        );
    if cfg.security != Security::None {
        let mut params = TlsParameters::builder(cfg.host.clone());
        if let Some(ca) = &cfg.extra_ca_file {
            let pem =
                std::fs::read(ca).with_context(|| format!("email.extra_ca_file: cannot read {}", ca.display()))?;
            let cert = Certificate::from_pem(&pem)
                .with_context(|| format!("email.extra_ca_file: {} is not a PEM certificate", ca.display()))?;
            params = params.add_root_certificate(cert);
        }
        let params = params.build_rustls().context("email.smtp: cannot set up TLS")?;
        builder = builder.tls(match cfg.security {
            Security::Tls => Tls::Wrapper(params),
            _ => Tls::Required(params),
        });
    }
    if let (Some(user), Some(password)) = (&cfg.username, &cfg.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_string()));
    }
    Ok(builder.build())
}

/// SMTP outcome classes (DESIGN §5): 535 and friends are credentials, other
/// 5xx permanent, 4xx and every network failure temporary.
fn classify_smtp(e: &lettre::transport::smtp::Error) -> SendError {
    let text = error_chain(e);
    if let Some(code) = e.status() {
        let code = code.to_string();
        if matches!(code.as_str(), "530" | "534" | "535") {
            return SendError::Credentials(format!("SMTP server rejected the credentials: {text}"));
        }
        if e.is_permanent() {
            return SendError::Permanent(format!("SMTP server refused the message: {text}"));
        }
        return SendError::temporary(format!("SMTP server deferred the message: {text}"));
    }
    // A certificate we do not trust, a server without STARTTLS, or no AUTH
    // mechanism in common: the configuration must change, retrying will not help.
    // lettre surfaces rustls' certificate errors as network errors.
    if e.is_tls() || text.contains("invalid peer certificate") {
        return SendError::Credentials(format!(
            "TLS with the SMTP server failed: {text} (for a private CA, set email.extra_ca_file)"
        ));
    }
    if e.is_client() && (text.contains("STARTTLS") || text.contains("authentication mechanism")) {
        return SendError::Credentials(format!("SMTP server cannot be used as configured: {text}"));
    }
    if e.is_client() {
        return SendError::Permanent(format!("SMTP client error: {text}"));
    }
    if timed_out(e) {
        return SendError::temporary(format!(
            "SMTP server did not answer in time (email.smtp.timeout_s): {text}"
        ));
    }
    SendError::temporary(format!("SMTP connection failed: {text}"))
}

/// A socket timeout: `TimedOut`, or `WouldBlock` as Unix reports a read timeout.
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(io.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock)
        {
            return true;
        }
        source = err.source();
    }
    false
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        source = s.source();
    }
    out
}

/// `<hash of the dedupe key@sender domain>`: stable across retries.
fn message_id(dedupe_key: &str, domain: &str) -> String {
    format!("<{}@{domain}>", short_hash(dedupe_key))
}

fn short_hash(s: &str) -> String {
    let digest = Sha256::digest(s.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn write_eml(dir: &std::path::Path, m: &Outgoing<'_>, message_id: &str, bytes: &[u8]) -> Result<(), SendError> {
    let name = format!("{}-{}.eml", m.kind, short_hash(m.dedupe_key));
    let tmp = dir.join(format!(".{name}.tmp"));
    let dest = dir.join(&name);
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, &dest))
        .map_err(|e| SendError::temporary(format!("cannot write {} for {message_id}: {e}", dest.display())))
}

/// `X-Rappel-Kind`, so filters and support can tell messages apart.
#[derive(Clone)]
struct RappelKind(String);

/// `X-Rappel-Original-To`, set when `redirect_to` diverts a message.
#[derive(Clone)]
struct OriginalTo(String);

macro_rules! text_header {
    ($ty:ident, $name:literal) => {
        impl Header for $ty {
            fn name() -> HeaderName {
                HeaderName::new_from_ascii_str($name)
            }
            fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
                Ok($ty(s.to_string()))
            }
            fn display(&self) -> HeaderValue {
                HeaderValue::new(Self::name(), self.0.clone())
            }
        }
    };
}
text_header!(RappelKind, "X-Rappel-Kind");
text_header!(OriginalTo, "X-Rappel-Original-To");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_converts_bare_line_feeds_only() {
        assert_eq!(crlf("a\nb\r\nc\n\n"), "a\r\nb\r\nc\r\n\r\n");
        assert_eq!(crlf("\nx"), "\r\nx");
    }

    #[test]
    fn message_id_is_stable_and_per_key() {
        assert_eq!(message_id("k1", "example.com"), message_id("k1", "example.com"));
        assert_ne!(message_id("k1", "example.com"), message_id("k2", "example.com"));
        assert!(message_id("k1", "example.com").ends_with("@example.com>"));
    }
}
