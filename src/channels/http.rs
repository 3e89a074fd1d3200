//! The HR APIs sync-attendance talks to: one ureq agent per service (keep-alive,
//! no redirects, error bodies read), or a folder of JSON batches. Knows how
//! HTTP answers classify, and masks the service's secrets in all it reports.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};

use super::SendError;
use crate::config::{HrAuth, HrTransport, ServiceConfig};

/// The longest `Retry-After` honoured; a larger one is read as this.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(7 * 24 * 3_600);
/// How much of an answer is read (results of a 10,000-log batch fit).
const BODY_LIMIT: u64 = 16 * 1024 * 1024;

enum Carrier {
    Http {
        agent: ureq::Agent,
        users_url: Option<String>,
        attendance_url: String,
        authorization: Option<String>,
    },
    File(PathBuf),
}

/// A request that did not succeed: how to act on it, and the HTTP status if
/// the server answered.
#[derive(Debug)]
pub struct Refused {
    pub status: Option<u16>,
    pub error: SendError,
}

impl Refused {
    /// The endpoint itself is wrong (not found, method not allowed, gone) or
    /// refuses the batch's size: every further batch would fail the same way.
    pub fn endpoint_wrong(&self) -> bool {
        matches!(self.status, Some(404 | 405 | 410 | 413 | 414 | 415))
    }
}

impl From<SendError> for Refused {
    fn from(error: SendError) -> Self {
        Refused { status: None, error }
    }
}

pub struct HrApi {
    carrier: Carrier,
}

impl HrApi {
    /// The service's client. `Err` (exit 78) when its bearer token cannot
    /// be sent in a header: a configuration error for this service only.
    pub fn new(cfg: &ServiceConfig) -> anyhow::Result<Self> {
        if let HrTransport::Http {
            auth: HrAuth::Bearer(token),
            ..
        } = &cfg.transport
        {
            let token = token
                .get()
                .map_err(|why| crate::exit::fail(crate::exit::Exit::Config, why.to_string()))?;
            header_safe(token).map_err(|why| {
                crate::exit::fail(
                    crate::exit::Exit::Config,
                    format!("attendance.services.{}.token: {why}", cfg.name),
                )
            })?;
        }
        Ok(match &cfg.transport {
            HrTransport::Http {
                base_url,
                users_endpoint,
                attendance_endpoint,
                auth,
            } => {
                let config = ureq::config::Config::builder()
                    .http_status_as_error(false)
                    .max_redirects(0)
                    .timeout_global(Some(cfg.timeout))
                    .user_agent(concat!("rappel/", env!("CARGO_PKG_VERSION")))
                    .build();
                let unavailable = |why: &str| crate::exit::fail(crate::exit::Exit::Config, why.to_string());
                let authorization = match auth {
                    HrAuth::Bearer(token) => Some(format!("Bearer {}", token.get().map_err(unavailable)?)),
                    HrAuth::Basic { username, password } => Some(format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD
                            .encode(format!("{username}:{}", password.get().map_err(unavailable)?))
                    )),
                    HrAuth::None => None,
                };
                if let HrAuth::Basic { username, password } = auth {
                    crate::mask::register_basic(username, password.get().map_err(unavailable)?);
                }
                HrApi {
                    carrier: Carrier::Http {
                        agent: super::resolve::agent(config),
                        users_url: users_endpoint.as_ref().map(|e| format!("{base_url}{e}")),
                        attendance_url: format!("{base_url}{attendance_endpoint}"),
                        authorization,
                    },
                }
            }
            HrTransport::File { dir } => HrApi {
                carrier: Carrier::File(dir.clone()),
            },
        })
    }

    /// Where the service's batches and users list would go, for a dry run:
    /// reads no secret and can send nothing (no credentials).
    pub fn offline(cfg: &ServiceConfig) -> Self {
        let carrier = match &cfg.transport {
            HrTransport::Http {
                base_url,
                users_endpoint,
                attendance_endpoint,
                ..
            } => Carrier::Http {
                agent: ureq::Agent::new_with_config(ureq::config::Config::builder().max_redirects(0).build()),
                users_url: users_endpoint.as_ref().map(|e| format!("{base_url}{e}")),
                attendance_url: format!("{base_url}{attendance_endpoint}"),
                authorization: None,
            },
            HrTransport::File { dir } => Carrier::File(dir.clone()),
        };
        HrApi { carrier }
    }

    /// Where batches go: the attendance URL, or the outbox folder.
    pub fn destination(&self) -> String {
        match &self.carrier {
            Carrier::Http { attendance_url, .. } => attendance_url.clone(),
            Carrier::File(dir) => dir.display().to_string(),
        }
    }

    /// Where users come from; `None` when this service has none to pull.
    pub fn users_url(&self) -> Option<&str> {
        match &self.carrier {
            Carrier::Http { users_url, .. } => users_url.as_deref(),
            Carrier::File(_) => None,
        }
    }

    /// The users list's body; `Ok(None)` when this service has none to pull.
    pub fn users(&self, now: DateTime<Utc>) -> Result<Option<String>, Refused> {
        let Carrier::Http {
            agent, authorization, ..
        } = &self.carrier
        else {
            return Ok(None);
        };
        let Some(url) = self.users_url() else {
            return Ok(None);
        };
        let mut request = agent.get(url).header("Accept", "application/json");
        if let Some(a) = authorization {
            request = request.header("Authorization", a);
        }
        self.answer(url, request.call(), now).map(Some)
    }

    /// Posts one batch under its Idempotency-Key; the body of a 2xx answer.
    pub fn push(&self, key: &str, body: &[u8], now: DateTime<Utc>) -> Result<String, Refused> {
        match &self.carrier {
            Carrier::File(dir) => write_batch(dir, key, body)
                .map(|()| String::new())
                .map_err(Refused::from),
            Carrier::Http {
                agent,
                attendance_url,
                authorization,
                ..
            } => {
                let mut request = agent
                    .post(attendance_url)
                    .header("Content-Type", "application/json")
                    .header("Accept", "application/json")
                    .header("Idempotency-Key", key);
                if let Some(a) = authorization {
                    request = request.header("Authorization", a);
                }
                self.answer(attendance_url, request.send(body), now)
            }
        }
    }

    /// The body of a 2xx answer, secrets masked; anything else classified.
    fn answer(
        &self,
        url: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        now: DateTime<Utc>,
    ) -> Result<String, Refused> {
        let mut response = response.map_err(|e| SendError::temporary(self.mask(&format!("{url}: {e}"))))?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let retry_after = header("retry-after").and_then(|v| retry_after(&v, now));
        let location = header("location");
        let body = response.body_mut().with_config().limit(BODY_LIMIT).read_to_string();
        if (200..300).contains(&status) {
            // The server took the request (2xx) even when its answer cannot
            // be read (too big, too slow): a batch counts as sent rather than
            // be posted again (not every API honours the Idempotency-Key).
            return Ok(match body {
                Ok(b) => self.mask(&b),
                Err(e) => {
                    log::warn!("{url} answered {status} but its answer cannot be read ({e}); taken as accepted");
                    String::new()
                }
            });
        }
        let what = format!(
            "HTTP {status} from {url}: {}",
            excerpt(&self.mask(&body.unwrap_or_default()))
        );
        let error = match status {
            401 | 403 => SendError::Credentials(format!("{what} (check the service's token or password)")),
            300..=399 => SendError::Credentials(format!(
                "{what} (a redirect to {}; redirects are not followed: correct base_url)",
                self.mask(location.as_deref().unwrap_or("nowhere"))
            )),
            408 | 429 | 500..=599 => SendError::Temporary {
                reason: what,
                retry_after,
            },
            _ => SendError::Permanent(what),
        };
        Err(Refused {
            status: Some(status),
            error,
        })
    }

    /// `text` with every secret replaced by `***`, in any encoding (`mask`).
    pub fn mask(&self, text: &str) -> String {
        crate::mask::mask(text)
    }
}

/// A bearer token goes as is in an `Authorization` header (RFC 9110 §5.5:
/// visible ASCII): one holding a space, a control character (a newline
/// inside a token file) or a non-ASCII character (a pasted `é`) could never
/// be sent, so it is a configuration error, not a failure per batch. The
/// reason never shows the token.
fn header_safe(token: &str) -> Result<(), String> {
    match token.chars().position(|c| !c.is_ascii_graphic()) {
        None => Ok(()),
        Some(at) => Err(format!(
            "the token holds a character that cannot be sent in an HTTP header at position {} \
             (a space, a control character such as a newline, or a non-ASCII one); expected visible ASCII only",
            at + 1
        )),
    }
}

/// `Retry-After`: seconds, or an HTTP date (read against the run's `now`).
pub fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(s) => Duration::from_secs(s),
        Err(_) => {
            let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
            (at - now).to_std().unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(RETRY_AFTER_MAX))
}

/// The first 300 characters of a body, on one line.
pub fn excerpt(body: &str) -> String {
    let flat: String = body
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match flat.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None if flat.is_empty() => "(empty body)".to_string(),
        None => flat,
    }
}

/// `<dir>/<key>.json`, written whole (a temporary file renamed) so a reader
/// never sees half a batch; the same batch again overwrites its own file.
fn write_batch(dir: &std::path::Path, key: &str, body: &[u8]) -> Result<(), SendError> {
    let path = dir.join(format!("{key}.json"));
    crate::files::write_atomically(&path, body)
        .map_err(|e| SendError::temporary(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = at("2026-03-10T09:00:00Z");
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Tue, 10 Mar 2026 09:05:00 GMT", now),
            Some(Duration::from_secs(300))
        );
        assert_eq!(retry_after("Tue, 10 Mar 2026 08:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(retry_after("99999999999", now), Some(RETRY_AFTER_MAX));
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn excerpt_is_bounded_and_on_one_line() {
        let long = "x".repeat(1_000);
        assert_eq!(excerpt(&long).chars().count(), 301);
        assert_eq!(excerpt("a\nb"), "a b");
        assert_eq!(excerpt("  "), "(empty body)");
    }
}
