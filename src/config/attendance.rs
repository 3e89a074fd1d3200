//! The `[attendance]` section: each HR service sync-attendance pushes punches
//! to, its endpoints, credentials, batch size and terminals. A terminal
//! belongs to one service; plain http only to a loopback host.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{RawAttendance, RawService};
use super::secret::{self, Secret};
use super::{http_base, within};

#[derive(Debug)]
pub struct AttendanceConfig {
    /// A temporarily failed log is retried while its attempts are below this.
    pub max_attempts: u32,
    /// By name, in name order.
    pub services: Vec<ServiceConfig>,
}

#[derive(Debug)]
pub struct ServiceConfig {
    pub name: String,
    pub transport: HrTransport,
    pub batch_size: u32,
    pub timeout: Duration,
    /// Terminal serials; empty means every terminal no other service names.
    pub terminals: Vec<String>,
}

#[derive(Debug)]
pub enum HrTransport {
    Http {
        /// `https://hr.example.com`, without a trailing slash.
        base_url: String,
        /// `None`: this service has no users to pull.
        users_endpoint: Option<String>,
        attendance_endpoint: String,
        auth: HrAuth,
    },
    /// Each batch written as JSON under `outbox/attendance/<service>/`.
    File { dir: PathBuf },
}

#[derive(Debug)]
pub enum HrAuth {
    Bearer(Secret),
    Basic { username: String, password: Secret },
    None,
}

impl HrAuth {
    /// The secrets a server might echo back, to be masked wherever its answer is shown.
    pub fn secrets(&self) -> Vec<&str> {
        match self {
            HrAuth::Bearer(token) => token.get().ok().into_iter().collect(),
            HrAuth::Basic { password, .. } => password.get().ok().into_iter().collect(),
            HrAuth::None => vec![],
        }
    }
}

pub(super) fn convert(
    raw: Option<RawAttendance>,
    path: &Path,
    dir: &Path,
    lease: Duration,
    warnings: &mut Vec<String>,
) -> Result<AttendanceConfig, String> {
    let raw = raw.unwrap_or_default();
    let max_attempts = within(raw.max_attempts.unwrap_or(10), 1, 1_000, "attendance.max_attempts")?;
    let mut services = Vec::new();
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    let mut catch_all: Option<String> = None;
    for (name, s) in raw.services.unwrap_or_default() {
        let service = convert_service(&name, s, path, dir, warnings)?;
        if let HrTransport::Http { .. } = service.transport {
            super::lease_covers(lease, service.timeout, &format!("attendance.services.{name}.timeout_s"))
                .map_err(|e| format!("{e}: a batch is held for one lease"))?;
        }
        if service.terminals.is_empty()
            && let Some(other) = catch_all.replace(name.clone())
        {
            return Err(format!(
                "attendance.services.{name}.terminals: empty (every terminal), like attendance.services.{other}; \
                 a terminal belongs to one service, so list each service's serials"
            ));
        }
        for serial in &service.terminals {
            if let Some(other) = owner.insert(serial.clone(), name.clone()) {
                let which = if other == name {
                    "twice".to_string()
                } else {
                    format!("also in attendance.services.{other}")
                };
                return Err(format!(
                    "attendance.services.{name}.terminals: {serial:?} is listed {which}; a terminal belongs to one service"
                ));
            }
        }
        services.push(service);
    }
    Ok(AttendanceConfig { max_attempts, services })
}

fn convert_service(
    name: &str,
    s: RawService,
    path: &Path,
    dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<ServiceConfig, String> {
    let key = format!("attendance.services.{name}");
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "{key}: the service name may hold only letters, digits, '-' and '_' (it names files and the Idempotency-Key)"
        ));
    }
    let transport = match s.transport.as_deref().unwrap_or("http") {
        "http" => {
            let base_url = http_base(&format!("{key}.base_url"), s.base_url.as_deref().unwrap_or(""))?;
            let endpoint = |field: &str, v: Option<String>| -> Result<Option<String>, String> {
                match v {
                    None => Ok(None),
                    Some(e) if e.starts_with('/') && !e.contains(char::is_whitespace) => Ok(Some(e)),
                    Some(e) => Err(format!("{key}.{field}: {e:?} (expected a path starting with '/')")),
                }
            };
            let attendance_endpoint = endpoint("attendance_endpoint", s.attendance_endpoint)?.ok_or_else(|| {
                format!(
                    "{key}.attendance_endpoint: missing (the path punches are posted to, e.g. \"/api/v1/attendance\")"
                )
            })?;
            let users_endpoint = endpoint("users_endpoint", s.users_endpoint)?;
            let read_secret =
                |field: &str, plain: Option<&str>, env: Option<&str>, file: Option<&str>, w: &mut Vec<String>| {
                    secret::read(
                        &secret::SecretSource {
                            key: &format!("{key}.{field}"),
                            plain,
                            env,
                            file,
                        },
                        path,
                        dir,
                        w,
                    )
                };
            let auth = match s.auth.as_deref().unwrap_or("bearer") {
                "bearer" => HrAuth::Bearer(
                    read_secret(
                        "token",
                        s.token.as_deref(),
                        s.token_env.as_deref(),
                        s.token_file.as_deref(),
                        warnings,
                    )?
                    .ok_or_else(|| {
                        format!("{key}.token_env: missing (set token_env or token_file, or auth = \"none\")")
                    })?,
                ),
                "basic" => HrAuth::Basic {
                    username: s
                        .username
                        .filter(|u| !u.is_empty() && !u.contains(':'))
                        .ok_or_else(|| format!("{key}.username: missing or holds ':' (auth = \"basic\" needs one)"))?,
                    password: read_secret(
                        "password",
                        s.password.as_deref(),
                        s.password_env.as_deref(),
                        s.password_file.as_deref(),
                        warnings,
                    )?
                    .ok_or_else(|| format!("{key}.password_env: missing (set password_env or password_file)"))?,
                },
                "none" => HrAuth::None,
                other => {
                    return Err(format!(
                        "{key}.auth: {other:?} (expected \"bearer\", \"basic\" or \"none\")"
                    ));
                }
            };
            HrTransport::Http {
                base_url,
                users_endpoint,
                attendance_endpoint,
                auth,
            }
        }
        "file" => HrTransport::File {
            dir: dir.join("outbox").join("attendance").join(name),
        },
        other => return Err(format!("{key}.transport: {other:?} (expected \"http\" or \"file\")")),
    };
    let mut terminals = Vec::new();
    for (i, serial) in s.terminals.unwrap_or_default().into_iter().enumerate() {
        let serial = serial.trim().to_string();
        if serial.is_empty() {
            return Err(format!("{key}.terminals[{i}]: empty serial"));
        }
        terminals.push(serial);
    }
    Ok(ServiceConfig {
        name: name.to_string(),
        transport,
        batch_size: within(s.batch_size.unwrap_or(100), 1, 10_000, &format!("{key}.batch_size"))?,
        timeout: Duration::from_secs(within(
            s.timeout_s.unwrap_or(30),
            1,
            3_600,
            &format!("{key}.timeout_s"),
        )?),
        terminals,
    })
}
