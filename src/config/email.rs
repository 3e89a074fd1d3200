//! The `[email]` section: the sender and the transport (SMTP, sendmail, or a
//! folder of `.eml` files), validated into typed settings.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::Mailbox;

use super::raw::RawEmail;
use super::{Secret, is_loopback, secret, within};

#[derive(Debug)]
pub struct EmailConfig {
    pub from: Mailbox,
    pub transport: EmailTransport,
}

#[derive(Debug)]
pub enum EmailTransport {
    Smtp(SmtpConfig),
    Sendmail { command: PathBuf },
    File { dir: PathBuf },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    StartTls,
    Tls,
    None,
}

#[derive(Debug)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub timeout: Duration,
    pub connections: u32,
    pub extra_ca_file: Option<PathBuf>,
}

pub(super) fn convert(e: RawEmail, path: &Path, dir: &Path, warnings: &mut Vec<String>) -> Result<EmailConfig, String> {
    let from_text = e
        .from
        .as_deref()
        .ok_or("email.from: missing (expected a sender such as \"Atelier <noreply@example.com>\")")?;
    let from: Mailbox = from_text
        .parse()
        .map_err(|err| format!("email.from: {from_text:?} is not a valid sender ({err})"))?;
    let extra_ca_file = match e.extra_ca_file.as_deref() {
        None | Some("") => None,
        Some(f) => {
            let p = dir.join(f);
            if !p.is_file() {
                return Err(format!(
                    "email.extra_ca_file: {} does not exist (expected a PEM file)",
                    p.display()
                ));
            }
            Some(p)
        }
    };
    let transport = match e.transport.as_deref().unwrap_or("smtp") {
        "smtp" => {
            let s = e
                .smtp
                .ok_or("email.smtp: missing (transport = \"smtp\" needs an [email.smtp] section)")?;
            let host = s
                .host
                .filter(|h| !h.trim().is_empty())
                .ok_or("email.smtp.host: missing")?;
            let security = match s.security.as_deref().unwrap_or("starttls") {
                "starttls" => Security::StartTls,
                "tls" => Security::Tls,
                "none" => Security::None,
                other => {
                    return Err(format!(
                        "email.smtp.security: {other:?} (expected \"starttls\", \"tls\" or \"none\")"
                    ));
                }
            };
            if security == Security::None && !is_loopback(&host) {
                return Err(format!(
                    "email.smtp.security: \"none\" is only allowed to a loopback host, not {host:?} (use \"starttls\" or \"tls\")"
                ));
            }
            let password = secret::read(
                &secret::SecretSource {
                    key: "email.smtp.password",
                    plain: s.password.as_deref(),
                    env: s.password_env.as_deref(),
                    file: s.password_file.as_deref(),
                },
                path,
                dir,
                warnings,
            )?;
            if password.is_some() && s.username.is_none() {
                return Err("email.smtp.username: missing (a password is set)".into());
            }
            EmailTransport::Smtp(SmtpConfig {
                port: s.port.unwrap_or(match security {
                    Security::Tls => 465,
                    Security::StartTls => 587,
                    Security::None => 25,
                }),
                host,
                security,
                username: s.username,
                password,
                timeout: Duration::from_secs(within(s.timeout_s.unwrap_or(30), 1, 3_600, "email.smtp.timeout_s")?),
                connections: within(s.connections.unwrap_or(4), 1, 64, "email.smtp.connections")?,
                extra_ca_file,
            })
        }
        "sendmail" => {
            // A bare name is looked up on PATH; a path is relative to this file.
            let command = e.sendmail_command.as_deref().unwrap_or("/usr/sbin/sendmail");
            EmailTransport::Sendmail {
                command: if command.contains(['/', '\\']) {
                    dir.join(command)
                } else {
                    PathBuf::from(command)
                },
            }
        }
        "file" => EmailTransport::File {
            dir: dir.join(e.outbox_dir.as_deref().unwrap_or("outbox/email")),
        },
        other => {
            return Err(format!(
                "email.transport: {other:?} (expected \"smtp\", \"sendmail\" or \"file\")"
            ));
        }
    };
    Ok(EmailConfig { from, transport })
}
