//! Email through lettre: SMTP (pooled, `connections` used in parallel),
//! sendmail, or a folder of `.eml` files; and how SMTP failures classify.

mod message;

pub use message::{message_id, short_hash};

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters, set_deadline};
use lettre::{Address, SendmailTransport, SmtpTransport, Transport};

use super::{Outgoing, SendError, Sent};
use crate::config::{EmailConfig, EmailTransport, Security, SmtpConfig};
use crate::exit::{Exit, OrExit, fail};
use message::Bodies;

enum Carrier {
    /// The transport and its per-read timeout.
    Smtp(Box<SmtpTransport>, Duration),
    Sendmail(SendmailTransport),
    File(PathBuf),
}

pub struct EmailChannel {
    from: Mailbox,
    carrier: Carrier,
    redirect_to: Option<Address>,
    parallelism: usize,
    bodies: Bodies,
    large: Mutex<()>,
}

impl EmailChannel {
    /// Builds the transport; a transport that cannot be built is a configuration error.
    pub fn new(cfg: &EmailConfig, redirect_to: Option<Address>) -> anyhow::Result<Self> {
        let (carrier, parallelism) = match &cfg.transport {
            EmailTransport::Smtp(smtp) => (
                Carrier::Smtp(Box::new(smtp_transport(smtp).or_exit(Exit::Config)?), smtp.timeout),
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
            bodies: Bodies::default(),
            large: Mutex::new(()),
        })
    }

    /// How many messages may be in flight at once.
    pub fn parallelism(&self) -> usize {
        self.parallelism.max(1)
    }

    /// How long one SMTP exchange may take in all (`exchange_budget`);
    /// zero for sendmail and the file transport.
    pub fn budget(&self) -> Duration {
        match &self.carrier {
            Carrier::Smtp(_, timeout) => exchange_budget(*timeout),
            _ => Duration::ZERO,
        }
    }

    /// Connects to the SMTP server (and authenticates) without sending.
    pub fn test_connection(&self) -> Result<(), SendError> {
        match &self.carrier {
            Carrier::Smtp(t, timeout) => {
                let previous = set_deadline(Some(exchange_deadline(*timeout, None)));
                let result = match t.test_connection() {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(SendError::temporary("the SMTP server did not answer NOOP")),
                    Err(e) => Err(classify_smtp(&e)),
                };
                set_deadline(previous);
                result
            }
            _ => Ok(()),
        }
    }

    pub fn send(&self, m: &Outgoing<'_>, wall: DateTime<Utc>) -> Result<Sent, SendError> {
        let large = m.attachment.as_ref().is_some_and(|a| {
            std::fs::metadata(a.path)
                .map(|meta| meta.len() > message::LARGE)
                .unwrap_or(false)
        });
        if !large {
            return self.build_and_send(m, wall, false);
        }
        // Large attachments go one at a time, each on a short-lived thread of
        // its own: every send holds a copy of the message, and the allocator
        // keeps freed memory per thread, so sends spread over the workers
        // would each keep their own copy. A fresh thread reuses the arena of
        // the one before it.
        let _one_at_a_time = self.large.lock().unwrap_or_else(|e| e.into_inner());
        std::thread::scope(|s| {
            s.spawn(|| self.build_and_send(m, wall, true))
                .join()
                .unwrap_or_else(|_| Err(SendError::temporary("sending a large message failed unexpectedly")))
        })
    }

    fn build_and_send(&self, m: &Outgoing<'_>, wall: DateTime<Utc>, large: bool) -> Result<Sent, SendError> {
        let from = &self.from;
        message::build_and(
            from,
            self.redirect_to.as_ref(),
            m,
            wall,
            &self.bodies,
            large,
            |envelope, bytes, id| {
                match &self.carrier {
                    Carrier::Smtp(t, timeout) => {
                        let previous = set_deadline(Some(exchange_deadline(*timeout, m.deadline)));
                        // 421: the server is closing the session (RFC 5321
                        // §3.8), a pooled connection it timed out or a
                        // restart; the transaction was not accepted, so it is
                        // tried once more, at once, on a fresh connection.
                        // The next message's envelope, for its commands to
                        // go with this content; not for a large message,
                        // sent from a thread of its own.
                        let next = m
                            .then
                            .filter(|_| !large)
                            .and_then(|to| message::envelope(from, self.redirect_to.as_ref(), to));
                        let result = match t.send_raw_then(envelope, bytes, next.as_ref()) {
                            Err(e) if closing(&e) => t.send_raw_then(envelope, bytes, next.as_ref()),
                            done => done,
                        };
                        set_deadline(previous);
                        result.map_err(|e| classify_smtp(&e))?;
                    }
                    Carrier::Sendmail(t) => t
                        .send_raw(envelope, bytes)
                        .map_err(|e| SendError::temporary(format!("sendmail failed: {e}")))?,
                    Carrier::File(dir) => write_eml(dir, m, id, bytes)?,
                }
                Ok(Sent {
                    provider_ref: Some(id.to_string()),
                })
            },
        )
    }
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
        let password = password.get().map_err(|why| fail(Exit::Config, why.to_string()))?;
        crate::mask::register_smtp(user, password);
        builder = builder.credentials(Credentials::new(user.clone(), password.to_string()));
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
    if e.is_client() && text.contains("authentication mechanism") {
        return SendError::Credentials(format!(
            "the SMTP server offers no login rappel can use (AUTH PLAIN or LOGIN), and email.smtp.username \
             is set; remove the username if the server needs no login, or use its submission port: {text}"
        ));
    }
    if e.is_client() && text.contains("STARTTLS") {
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

/// How long one SMTP exchange (connect, greet, TLS, AUTH, one message) may
/// take in all: four read timeouts, the budget `[delivery] lease_s` is
/// checked against (it must exceed 4 x `timeout_s`), and never past the
/// claim's `deadline`. lettre's timeout bounds each read only; the deadline
/// bounds them together (vendor/lettre/README.rappel.md).
fn exchange_deadline(timeout: Duration, deadline: Option<Instant>) -> Instant {
    let budget = Instant::now() + exchange_budget(timeout);
    deadline.map_or(budget, |d| d.min(budget))
}

/// One SMTP exchange's time in all: four read timeouts (`[delivery]
/// lease_s` must exceed it, `config::lease_covers`).
fn exchange_budget(timeout: Duration) -> Duration {
    timeout * 4
}

/// Whether the server answered 421, closing the session.
fn closing(e: &lettre::transport::smtp::Error) -> bool {
    e.status().is_some_and(|code| code.to_string() == "421")
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

fn write_eml(dir: &std::path::Path, m: &Outgoing<'_>, message_id: &str, bytes: &[u8]) -> Result<(), SendError> {
    let name = format!("{}-{}.eml", m.kind, message::short_hash(m.dedupe_key));
    let dest = dir.join(&name);
    crate::files::write_atomically(&dest, bytes)
        .map_err(|e| SendError::temporary(format!("cannot write {} for {message_id}: {e}", dest.display())))
}
