//! WhatsApp and SMS through Twilio's Messages API (one ureq agent with
//! keep-alive), or a folder of JSON files for demos and staging. Knows how
//! Twilio's answers classify; nothing about jobs.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

use super::{Outgoing, SendError, Sent};
use crate::config::{WhatsappConfig, WhatsappTransport};

enum Carrier {
    Api {
        agent: ureq::Agent,
        messages_url: String,
        authorization: String,
    },
    File(PathBuf),
}

pub struct TwilioChannel {
    carrier: Carrier,
    from: Option<String>,
    sms_from: Option<String>,
}

/// A message's `payload`: an approved template instead of a free text.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
pub struct Payload {
    pub content_sid: Option<String>,
    /// `{"1": "...", "2": "..."}`
    pub content_variables: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ApiError {
    code: Option<i64>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct ApiMessage {
    sid: Option<String>,
    status: Option<String>,
    error_code: Option<i64>,
}

/// Twilio's later view of a sent message.
#[derive(Debug)]
pub struct Status {
    pub status: String,
    pub error_code: Option<i64>,
}

/// `+` then 8 to 15 digits, the first not 0 (E.164).
pub fn is_e164(phone: &str) -> bool {
    let Some(digits) = phone.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

impl TwilioChannel {
    /// The Twilio client, or the file transport. `Err` (exit 78) when the
    /// auth token cannot be had.
    pub fn new(cfg: &WhatsappConfig) -> anyhow::Result<Self> {
        let carrier = match &cfg.transport {
            WhatsappTransport::Twilio {
                account_sid,
                auth_token,
                api_base,
            } => {
                let config = ureq::config::Config::builder()
                    .http_status_as_error(false)
                    .max_redirects(0)
                    .timeout_global(Some(cfg.timeout))
                    .build();
                let token = auth_token
                    .get()
                    .map_err(|why| crate::exit::fail(crate::exit::Exit::Config, why.to_string()))?;
                let credentials = format!("{account_sid}:{token}");
                crate::mask::register_basic(account_sid, token);
                Carrier::Api {
                    agent: super::resolve::agent(config),
                    messages_url: format!("{api_base}/2010-04-01/Accounts/{account_sid}/Messages"),
                    authorization: format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(credentials)
                    ),
                }
            }
            WhatsappTransport::File { dir } => Carrier::File(dir.clone()),
        };
        Ok(TwilioChannel {
            carrier,
            from: cfg.from.clone(),
            sms_from: cfg.sms_from.clone(),
        })
    }

    /// Sends on `channel` (WhatsApp, or SMS for any other).
    pub fn send(&self, channel: crate::domain::Channel, m: &Outgoing<'_>) -> Result<Sent, SendError> {
        if !is_e164(m.recipient) {
            return Err(SendError::Permanent(format!(
                "{:?} is not an E.164 phone number",
                m.recipient
            )));
        }
        let whatsapp = channel == crate::domain::Channel::Whatsapp;
        let (to, from) = if whatsapp {
            (format!("whatsapp:{}", m.recipient), self.from.as_deref())
        } else {
            (m.recipient.to_string(), self.sms_from.as_deref())
        };
        let from = from.ok_or_else(|| {
            SendError::Credentials(format!(
                "whatsapp.{}: missing, so {channel} messages cannot be sent",
                if whatsapp { "from" } else { "sms_from" }
            ))
        })?;
        let payload: Payload = match m.payload {
            Some(p) => serde_json::from_str(p).map_err(|e| SendError::Permanent(format!("bad payload: {e}")))?,
            None => Payload::default(),
        };
        let mut form: Vec<(&str, String)> = vec![("To", to), ("From", from.to_string())];
        match (&payload.content_sid, whatsapp) {
            (Some(sid), true) => {
                form.push(("ContentSid", sid.clone()));
                if let Some(vars) = &payload.content_variables {
                    form.push(("ContentVariables", vars.to_string()));
                }
            }
            _ => form.push(("Body", m.body.to_string())),
        }
        match &self.carrier {
            Carrier::File(dir) => write_json(dir, channel.as_str(), m, &form),
            Carrier::Api {
                agent,
                messages_url,
                authorization,
            } => {
                let response = agent
                    .post(format!("{messages_url}.json"))
                    .header("Authorization", authorization)
                    .send_form(form.iter().map(|(k, v)| (*k, v.as_str())));
                let (status, retry_after, body) = read(response)?;
                sent(status, retry_after, &body)
            }
        }
    }

    /// Reads the account (`GET .../Accounts/<sid>.json`) to check the
    /// credentials; `Ok(false)` for the file transport, which has none.
    pub fn check_account(&self) -> Result<bool, SendError> {
        let Carrier::Api {
            agent,
            messages_url,
            authorization,
        } = &self.carrier
        else {
            return Ok(false);
        };
        let account_url = messages_url.trim_end_matches("/Messages");
        let response = agent
            .get(format!("{account_url}.json"))
            .header("Authorization", authorization)
            .call();
        let (status, retry_after, body) = read(response)?;
        if (200..300).contains(&status) {
            Ok(true)
        } else {
            Err(classify(status, retry_after, &body))
        }
    }

    /// Asks Twilio for a message's current status; `None` for the file transport.
    pub fn status(&self, sid: &str) -> Result<Option<Status>, SendError> {
        let Carrier::Api {
            agent,
            messages_url,
            authorization,
        } = &self.carrier
        else {
            return Ok(None);
        };
        let response = agent
            .get(format!("{messages_url}/{sid}.json"))
            .header("Authorization", authorization)
            .call();
        let (status, retry_after, body) = read(response)?;
        message_status(status, retry_after, &body).map(Some)
    }
}

/// What an answer to a message's POST says: its SID on a 2xx, else its class.
pub fn sent(status: u16, retry_after: Option<Duration>, body: &str) -> Result<Sent, SendError> {
    if !(200..300).contains(&status) {
        return Err(classify(status, retry_after, body));
    }
    // Twilio took the message (2xx) even when its answer cannot be read (too
    // big, cut, not JSON): it has no idempotency key, so sending it again
    // would send it twice. Recorded sent, its SID unknown.
    match serde_json::from_str::<ApiMessage>(body) {
        Ok(message) => Ok(Sent {
            provider_ref: message.sid,
        }),
        Err(e) => {
            log::warn!(
                "Twilio accepted a message (HTTP {status}) but its answer cannot be read ({e}); recorded sent, SID unknown"
            );
            Ok(Sent { provider_ref: None })
        }
    }
}

/// What an answer to a message's GET says: its status on a 2xx, else its class.
pub fn message_status(status: u16, retry_after: Option<Duration>, body: &str) -> Result<Status, SendError> {
    if !(200..300).contains(&status) {
        return Err(classify(status, retry_after, body));
    }
    let message: ApiMessage =
        serde_json::from_str(body).map_err(|e| SendError::temporary(format!("unreadable status: {e}")))?;
    Ok(Status {
        status: message.status.unwrap_or_default(),
        error_code: message.error_code,
    })
}

fn read(
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<(u16, Option<Duration>, String), SendError> {
    let mut response = response.map_err(|e| SendError::temporary(format!("Twilio could not be reached: {e}")))?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(retry_after);
    let body = response
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_string()
        .unwrap_or_default();
    Ok((status, retry_after, body))
}

/// Twilio's `Retry-After` header: whole seconds, at most a week (a wait
/// beyond year 9999 could not be stored, nor added to now without overflow).
pub fn retry_after(value: &str) -> Option<Duration> {
    let seconds = value.trim().parse::<u64>().ok()?;
    Some(Duration::from_secs(seconds).min(super::http::RETRY_AFTER_MAX))
}

/// Twilio's answers by class (DESIGN §5).
pub fn classify(status: u16, retry_after: Option<Duration>, body: &str) -> SendError {
    let error: Option<ApiError> = serde_json::from_str(body).ok();
    let code = error.as_ref().and_then(|e| e.code);
    let message = error.and_then(|e| e.message).unwrap_or_else(|| excerpt(body));
    let what = match code {
        Some(code) => format!("Twilio error {code} (HTTP {status}): {message}"),
        None => format!("Twilio answered HTTP {status}: {message}"),
    };
    match (status, code) {
        (401 | 403, _) | (_, Some(20003)) => {
            SendError::Credentials(format!("{what}: check account_sid and the auth token"))
        }
        (429, _) | (_, Some(20429)) => SendError::Throttled {
            reason: what,
            retry_after,
        },
        (408, _) | (500..=599, _) => SendError::Temporary {
            reason: what,
            retry_after,
        },
        _ => SendError::Permanent(what),
    }
}

fn excerpt(body: &str) -> String {
    let trimmed = body.trim();
    match trimmed.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &trimmed[..i]),
        None => trimmed.to_string(),
    }
}

fn write_json(
    dir: &std::path::Path,
    channel: &str,
    m: &Outgoing<'_>,
    form: &[(&str, String)],
) -> Result<Sent, SendError> {
    let folder = dir.join(channel);
    let name = format!("{}-{}.json", m.kind, crate::channels::email::short_hash(m.dedupe_key));
    let fields: serde_json::Map<String, serde_json::Value> = form
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.clone())))
        .collect();
    let json = serde_json::to_vec_pretty(&fields).unwrap_or_default();
    crate::files::write_atomically(&folder.join(&name), &json)
        .map_err(|e| SendError::temporary(format!("cannot write {}: {e}", folder.join(&name).display())))?;
    Ok(Sent {
        provider_ref: Some(format!("file:{name}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164() {
        for ok in ["+24107123456", "+14155238886", "+33612345678"] {
            assert!(is_e164(ok), "{ok}");
        }
        for bad in [
            "",
            "24107123456",
            "+0123456789",
            "+241 07 12 34 56",
            "+1234567",
            "+1234567890123456",
            "+33a12345678",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
    }

    #[test]
    fn classes() {
        let body = |code: i64| format!("{{\"code\": {code}, \"message\": \"m\", \"status\": 400}}");
        assert!(matches!(classify(400, None, &body(21211)), SendError::Permanent(_)));
        assert!(matches!(classify(400, None, &body(21610)), SendError::Permanent(_)));
        assert!(matches!(classify(401, None, &body(20003)), SendError::Credentials(_)));
        assert!(matches!(
            classify(429, Some(Duration::from_secs(30)), &body(20429)),
            SendError::Throttled {
                retry_after: Some(_),
                ..
            }
        ));
        assert!(matches!(classify(400, None, &body(20429)), SendError::Throttled { .. }));
        assert!(matches!(classify(503, None, "oops"), SendError::Temporary { .. }));
    }

    #[test]
    fn retry_after_is_capped_to_a_week() {
        // Found by fuzzing (fuzz/seeds/twilio/): 999999999999 s put the next
        // attempt in year 33715, which instant::format cannot write sortably;
        // 9000000000000 s made the engine's `now + wait` overflow and panic.
        let week = crate::channels::http::RETRY_AFTER_MAX;
        assert_eq!(retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(retry_after("999999999999"), Some(week));
        assert_eq!(retry_after("9000000000000"), Some(week));
        assert_eq!(retry_after(&u64::MAX.to_string()), Some(week));
        assert_eq!(retry_after("soon"), None);
        assert_eq!(retry_after("-1"), None);
        let err = sent(429, retry_after("9000000000000"), "{}").unwrap_err();
        assert!(
            matches!(err, SendError::Throttled { retry_after: Some(w), .. } if w == week),
            "{err:?}"
        );
    }
}
