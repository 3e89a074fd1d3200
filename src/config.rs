//! The validated configuration: `RawConfig` (as written) becomes `Config` in
//! one conversion, where zones, addresses, paths and secrets are checked. Every
//! error names the file, the key and what was expected (exit 78).

mod attendance;
pub mod database;
mod discover;
mod email;
mod raw;
mod reminders;
mod reports;
mod secret;
mod sources;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use chrono_tz::Tz;
use lettre::Address;

use crate::exit::{Exit, fail};
pub use attendance::{AttendanceConfig, HrAuth, HrTransport, ServiceConfig};
pub use discover::candidates as discovery_paths;
pub use email::{EmailConfig, EmailTransport, Security, SmtpConfig};
pub use raw::RawConfig;
pub use reminders::{ChannelPolicy, ContentTemplate, RemindersConfig, WhatsappConfig, WhatsappTransport, kind_list};
pub use reports::{ReportDefinition, ReportsConfig};
pub use secret::Secret;

/// Template language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    Fr,
    En,
}

impl Locale {
    pub const ALL: [Locale; 2] = [Locale::Fr, Locale::En];

    pub fn parse(s: &str) -> Option<Locale> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fr" | "fr_fr" | "fr-fr" => Some(Locale::Fr),
            "en" | "en_us" | "en-us" | "en_gb" | "en-gb" => Some(Locale::En),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Locale::Fr => "fr",
            Locale::En => "en",
        }
    }
}

#[derive(Debug)]
pub struct Config {
    pub path: PathBuf,
    /// The SQLite file (beside the configuration when `database` is a
    /// PostgreSQL URL: its lock files go there).
    pub database: PathBuf,
    /// `database = "postgres://…"`: the server (DESIGN §9).
    pub postgres: Option<Box<database::Postgres>>,
    pub timezone: Tz,
    /// `naive_timezone`: the zone of instants host rows write without an
    /// offset (default UTC; DESIGN §9).
    pub naive_timezone: Tz,
    /// Whether `naive_timezone` was written (config check warns about naive
    /// instants only when it was not).
    pub naive_timezone_set: bool,
    pub locale: Locale,
    pub templates_dir: Option<PathBuf>,
    pub site_url: Option<String>,
    pub email: Option<EmailConfig>,
    pub delivery: DeliveryConfig,
    pub delay_alerts: DelayAlertsConfig,
    pub reports: ReportsConfig,
    pub reminders: RemindersConfig,
    pub whatsapp: Option<WhatsappConfig>,
    pub attendance: AttendanceConfig,
    /// `[monitoring] log_format = "json"`.
    pub json_logs: bool,
    /// `[monitoring.ping_urls]`: job (or `run-all`, `purge`) -> check URL.
    pub ping_urls: BTreeMap<String, String>,
    /// How long a ping may take before it is given up (never failing the job).
    pub ping_timeout: Duration,
    /// `[monitoring] textfile_dir`: where each run writes `rappel.prom` for
    /// node_exporter's textfile collector (relative to the config's folder).
    pub textfile_dir: Option<PathBuf>,
    /// `[sources.*]`: the input tables read from the host's own tables or
    /// queries (DESIGN §9); the others are the contract tables.
    pub sources: Vec<crate::db::sources::Source>,
    /// Notices found while converting (plain secrets in a readable file).
    pub warnings: Vec<String>,
}

impl Config {
    /// The configured database with its `[sources]` mapped on every
    /// connection; read-only for dry runs and commands that write nothing.
    pub fn db(&self, read_only: bool) -> crate::db::Database {
        let db = crate::db::Database::new(self.database.clone(), read_only).with_sources(self.sources.clone());
        match &self.postgres {
            Some(server) => db.on_server(std::sync::Arc::new((**server).clone())),
            None => db,
        }
    }
}

#[derive(Debug)]
pub struct DeliveryConfig {
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub retry_cap: Duration,
    pub lease: Duration,
    /// Messages per second; 0 means unlimited.
    pub rate_per_s: f64,
    pub redirect_to: Option<Address>,
    /// `quiet_hours` and `send_windows`: when messages may go, in each
    /// recipient's zone.
    pub send: crate::quiet::SendPolicy,
}

#[derive(Debug)]
pub struct DelayAlertsConfig {
    pub threshold_days: u32,
    pub rearm_hours: u32,
    /// A local time of day (configured zone) at which digests go, instead of
    /// each entry's own time of day.
    pub alert_at: Option<chrono::NaiveTime>,
    pub recipients: Vec<Address>,
    pub stage_threshold_days: BTreeMap<String, u32>,
}

impl DelayAlertsConfig {
    pub fn threshold_for(&self, stage: &str) -> u32 {
        self.stage_threshold_days
            .get(stage)
            .copied()
            .unwrap_or(self.threshold_days)
    }
}

/// Finds and loads the configuration (DESIGN §2 discovery order).
pub fn load(explicit: Option<&Path>) -> anyhow::Result<Config> {
    let path = discover::find(explicit).map_err(|tried| {
        let list: Vec<String> = tried.iter().map(|p| format!("  {}", p.display())).collect();
        fail(
            Exit::Config,
            format!(
                "no configuration file found; tried:\n{}\nRun `rappel init` to write one, or pass --config PATH.",
                list.join("\n")
            ),
        )
    })?;
    load_file(&path)
}

/// Loads and validates one file.
pub fn load_file(path: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read configuration file {}", path.display()))
        .map_err(|e| crate::exit::Fatal(Exit::Config, e))?;
    load_str(&text, path)
}

/// Validates configuration text as if read from `path`: relative paths resolve
/// from its folder and errors name it (the file itself need not exist).
pub fn load_str(text: &str, path: &Path) -> anyhow::Result<Config> {
    let raw = parse_toml(text).map_err(|msg| fail(Exit::Config, format!("{}: {msg}", path.display())))?;
    convert(raw, path).map_err(|msg| fail(Exit::Config, format!("{}: {msg}", path.display())))
}

fn parse_toml(text: &str) -> Result<RawConfig, String> {
    let de = toml::Deserializer::parse(text).map_err(|e| describe_toml_error(&e, text, ""))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        describe_toml_error(&e.into_inner(), text, &key)
    })
}

/// `line L, column C: key `k`: message`, without quoting the file: the line
/// may hold a secret. A bad value under a secret key is not described at all.
fn describe_toml_error(e: &toml::de::Error, text: &str, key: &str) -> String {
    let mut out = String::new();
    if let Some(span) = e.span() {
        let before = &text.as_bytes()[..span.start.min(text.len())];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let column = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
        out.push_str(&format!("line {line}, column {column}: "));
    }
    if !key.is_empty() && key != "." {
        out.push_str(&format!("key `{key}`: "));
    }
    let last = key.rsplit('.').next().unwrap_or("");
    if matches!(last, "password" | "token" | "auth_token") {
        out.push_str("invalid value (not shown: it is a secret)");
    } else {
        out.push_str(e.message().trim());
    }
    out
}

fn convert(raw: RawConfig, path: &Path) -> Result<Config, String> {
    let dir = path
        .parent()
        .map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p })
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let resolve = |p: &str| dir.join(p);
    let mut warnings = Vec::new();
    let (database, postgres) = match database::convert(raw.database, path, &dir, &mut warnings)? {
        database::Location::Sqlite(file) => (file, None),
        database::Location::Postgres(server) => (dir.join("rappel.db"), Some(server)),
    };

    let timezone = match raw.timezone.as_deref() {
        None => chrono_tz::UTC,
        Some(z) => parse_zone(z).map_err(|e| format!("timezone: {e}"))?,
    };
    let naive_timezone = match raw.naive_timezone.as_deref() {
        None => chrono_tz::UTC,
        Some(z) => parse_zone(z).map_err(|e| format!("naive_timezone: {e}"))?,
    };
    let locale = match raw.locale.as_deref() {
        None => Locale::Fr,
        Some(l) => {
            Locale::parse(l).ok_or_else(|| format!("locale: unknown language {l:?} (expected \"fr\" or \"en\")"))?
        }
    };
    if let Some(url) = &raw.site_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        return Err(format!("site_url: {url:?} is not an absolute http(s) URL"));
    }
    let email = match raw.email {
        None => None,
        Some(e) => Some(email::convert(e, path, &dir, &mut warnings)?),
    };
    let d = raw.delivery;
    let delivery = DeliveryConfig {
        max_attempts: within(d.max_attempts.unwrap_or(5), 1, 1_000, "delivery.max_attempts")?,
        retry_base: Duration::from_secs(within(
            d.retry_base_s.unwrap_or(60),
            1,
            MONTH_S,
            "delivery.retry_base_s",
        )?),
        retry_cap: Duration::from_secs(within(
            d.retry_cap_s.unwrap_or(21_600),
            1,
            MONTH_S,
            "delivery.retry_cap_s",
        )?),
        lease: Duration::from_secs(within(d.lease_s.unwrap_or(600), 1, MONTH_S, "delivery.lease_s")?),
        rate_per_s: match d.rate_per_s.unwrap_or(0.0) {
            r if r == 0.0 || (0.001..=1_000_000.0).contains(&r) => r,
            r => {
                return Err(format!(
                    "delivery.rate_per_s: {r} (expected 0 for unlimited, or 0.001 to 1000000 a second)"
                ));
            }
        },
        redirect_to: match d.redirect_to.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(a) => Some(parse_address(a).map_err(|e| format!("delivery.redirect_to: {e}"))?),
        },
        send: crate::quiet::SendPolicy {
            quiet_hours: match d.quiet_hours.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(q) => Some(crate::quiet::Period::parse(q).map_err(|e| format!("delivery.quiet_hours: {e}"))?),
            },
            windows: {
                let mut windows = BTreeMap::new();
                for (name, text) in d.send_windows.unwrap_or_default() {
                    let key = format!("delivery.send_windows.{name}");
                    let kind = name
                        .trim()
                        .to_lowercase()
                        .parse::<crate::domain::Kind>()
                        .ok()
                        .filter(|k| *k != crate::domain::Kind::Test)
                        .ok_or_else(|| format!("{key}: not a kind rappel sends"))?;
                    windows.insert(
                        kind,
                        crate::quiet::Window::parse(&text).map_err(|e| format!("{key}: {e}"))?,
                    );
                }
                windows
            },
        },
    };
    delivery.send.check()?;
    if let Some(EmailConfig {
        transport: EmailTransport::Smtp(smtp),
        ..
    }) = &email
    {
        lease_covers(delivery.lease, smtp.timeout, "email.smtp.timeout_s")?;
    }
    let whatsapp = reminders::convert_whatsapp(raw.whatsapp, path, &dir, &mut warnings)?;
    if let Some(w) = &whatsapp
        && matches!(w.transport, WhatsappTransport::Twilio { .. })
    {
        lease_covers(delivery.lease, w.timeout, "whatsapp.timeout_s")?;
    }
    let mut reminders_cfg = reminders::convert_reminders(raw.reminders, &mut warnings)?;
    reminders::keep_sendable(&mut reminders_cfg, email.is_some(), whatsapp.as_ref(), &mut warnings);
    let a = raw.delay_alerts;
    let delay_alerts = DelayAlertsConfig {
        threshold_days: within(
            a.threshold_days.unwrap_or(14),
            1,
            CENTURY_DAYS,
            "delay_alerts.threshold_days",
        )?,
        rearm_hours: within(
            a.rearm_hours.unwrap_or(24),
            0,
            CENTURY_DAYS * 24,
            "delay_alerts.rearm_hours",
        )?,
        alert_at: a
            .alert_at
            .as_deref()
            .map(|v| {
                chrono::NaiveTime::parse_from_str(v.trim(), "%H:%M").map_err(|_| {
                    format!("delay_alerts.alert_at: {v:?} (expected HH:MM on a 24-hour clock, such as \"07:00\")")
                })
            })
            .transpose()?,
        recipients: every_address(&a.recipients.unwrap_or_default(), "delay_alerts.recipients")?,
        stage_threshold_days: a
            .stage_threshold_days
            .unwrap_or_default()
            .into_iter()
            .map(|(stage, days)| {
                within(
                    days,
                    1,
                    CENTURY_DAYS,
                    &format!("delay_alerts.stage_threshold_days.{stage:?}"),
                )
                .map(|d| (stage, d))
            })
            .collect::<Result<_, _>>()?,
    };
    let json_logs = match raw.monitoring.log_format.as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => {
            return Err(format!(
                "monitoring.log_format: {other:?} (expected \"text\" or \"json\")"
            ));
        }
    };
    let attendance = attendance::convert(raw.attendance, path, &dir, delivery.lease, &mut warnings)?;
    let mut ping_urls = BTreeMap::new();
    for (job, url) in raw.monitoring.ping_urls.unwrap_or_default() {
        let pinged = crate::domain::Run::PINGED.map(crate::domain::Run::as_str);
        if !pinged.contains(&job.as_str()) {
            return Err(format!(
                "monitoring.ping_urls.{job}: not a job (expected one of {})",
                pinged.join(", ")
            ));
        }
        // The URL holds the check's secret: errors never show it.
        let url = http_base(&format!("monitoring.ping_urls.{job}"), &url)
            .ok()
            .filter(|u| !u.contains(['?', '#']))
            .ok_or_else(|| {
                format!(
                    "monitoring.ping_urls.{job}: expected an https URL (http only to a loopback host) \
                     without credentials, query or fragment (not shown: it holds the check's secret)"
                )
            })?;
        ping_urls.insert(job, url);
    }
    let ping_timeout = Duration::from_secs(within(
        raw.monitoring.ping_timeout_s.unwrap_or(5),
        1,
        60,
        "monitoring.ping_timeout_s",
    )?);
    Ok(Config {
        path: path.to_path_buf(),
        database,
        postgres,
        timezone,
        naive_timezone,
        naive_timezone_set: raw.naive_timezone.is_some(),
        locale,
        templates_dir: raw.templates_dir.as_deref().map(resolve),
        site_url: raw.site_url,
        email,
        delivery,
        delay_alerts,
        reports: reports::convert(raw.reports, &dir)?,
        reminders: reminders_cfg,
        whatsapp,
        attendance,
        json_logs,
        ping_urls,
        ping_timeout,
        textfile_dir: match raw.monitoring.textfile_dir.as_deref() {
            Some(d) if d.trim().is_empty() => {
                return Err("monitoring.textfile_dir: empty (leave it out for no metrics file)".into());
            }
            d => d.map(resolve),
        },
        sources: sources::convert(raw.sources, naive_timezone)?,
        warnings,
    })
}

/// The `[reminders]` defaults, for unit tests elsewhere.
#[cfg(test)]
pub fn reminders_for_tests() -> RemindersConfig {
    reminders::convert_reminders(None, &mut Vec::new()).expect("defaults are valid")
}

/// An IANA zone name as a `Tz`.
pub fn parse_zone(z: &str) -> Result<Tz, String> {
    z.parse::<Tz>()
        .map_err(|_| format!("unknown time zone {z:?} (expected an IANA name such as \"Europe/Paris\")"))
}

/// An email address (bare, without a display name).
pub fn parse_address(a: &str) -> Result<Address, String> {
    a.trim()
        .parse::<Address>()
        .map_err(|e| format!("{a:?} is not a valid email address ({e})"))
}

/// Every address of a list, or one error naming each invalid one (not only
/// the first: an operator fixes them all in one go).
fn every_address(list: &[String], key: &str) -> Result<Vec<Address>, String> {
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    for (i, raw) in list.iter().enumerate() {
        match crate::recipient::email(raw).and_then(|a| parse_address(&a)) {
            Ok(address) => ok.push(address),
            Err(e) => bad.push(format!("{key}[{i}]: {e}")),
        }
    }
    if bad.is_empty() { Ok(ok) } else { Err(bad.join("; ")) }
}

pub(crate) const MONTH_S: u64 = 31 * 24 * 3_600;
const CENTURY_DAYS: u32 = 36_525;

/// A number in `[min, max]`; the bounds keep time arithmetic far from overflow.
pub(crate) fn within<T: PartialOrd + std::fmt::Display + Copy>(v: T, min: T, max: T, key: &str) -> Result<T, String> {
    if v >= min && v <= max {
        Ok(v)
    } else {
        Err(format!("{key}: {v} (expected a number from {min} to {max})"))
    }
}

/// A claim holds for one lease, which must outlast four of a transport's
/// timeouts so that a send ends before its lease does (DESIGN §9). Errors:
/// the `delivery.lease_s` line naming `key`.
pub(crate) fn lease_covers(lease: Duration, timeout: Duration, key: &str) -> Result<(), String> {
    if lease <= timeout * 4 {
        return Err(format!(
            "delivery.lease_s: {} s must exceed 4 x {key} ({} s)",
            lease.as_secs(),
            timeout.as_secs()
        ));
    }
    Ok(())
}

/// An API's base URL (config key `key`): http(s), no trailing slash, https
/// unless the host is this machine, no credentials in it. Errors: one line
/// naming `key`.
pub(crate) fn http_base(key: &str, url: &str) -> Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    if url.contains('@') {
        return Err(format!(
            "{key}: the URL holds credentials (not shown); give them in the service's own keys, from env or a file"
        ));
    }
    let host = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{key}: {url:?} is not an http(s) URL"))?;
    let authority = host.split(['/', '?', '#']).next().unwrap_or("");
    let name = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    if name.is_empty() {
        return Err(format!("{key}: {url:?} has no host"));
    }
    if url.starts_with("http://") && !is_loopback(name) {
        return Err(format!(
            "{key}: {url:?} must use https (plain http only to a loopback host such as 127.0.0.1)"
        ));
    }
    Ok(url.to_string())
}

/// Whether a host name is this machine (plain-text protocols are allowed only there).
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert_text(text: &str) -> Result<Config, String> {
        convert(parse_toml(text)?, Path::new("/srv/app/rappel.toml"))
    }

    #[test]
    fn unknown_key_is_named_with_its_path() {
        let err = convert_text("[email.smtp]\nhostt = \"x\"\n").unwrap_err();
        assert!(err.contains("email.smtp"), "{err}");
        assert!(err.contains("hostt"), "{err}");
    }

    #[test]
    fn errors_never_quote_a_secret() {
        for text in [
            "[email.smtp]\npassword = 123456\n",
            "[email.smtp]\npasword = \"123456\"\n",
            "[email.smtp]\npassword = \"12\\q3456\"\n",
        ] {
            let err = convert_text(text).unwrap_err();
            assert!(!err.contains("123456") && !err.contains("3456"), "{text:?} gave {err}");
            assert!(err.contains("line 2"), "{err}");
        }
    }

    #[test]
    fn quiet_hours_and_send_windows_are_checked_where_they_are_written() {
        use crate::domain::Kind;
        let c = convert_text(
            "[delivery]\nquiet_hours = \"21:00-08:00\"\n[delivery.send_windows]\ndelay_alert = \"mon-fri 08:00-18:00\"\n",
        )
        .unwrap();
        assert!(c.delivery.send.quiet_hours.is_some());
        assert!(c.delivery.send.windows.contains_key(&Kind::DelayAlert));
        assert!(convert_text("").unwrap().delivery.send.is_open());
        for (text, says) in [
            (
                "[delivery]\nquiet_hours = \"9pm-8am\"\n",
                "delivery.quiet_hours: \"9pm-8am\"",
            ),
            (
                "[delivery.send_windows]\nalerts = \"08:00-18:00\"\n",
                "delivery.send_windows.alerts: not a kind",
            ),
            (
                "[delivery.send_windows]\nreport = \"weekdays 08:00-18:00\"\n",
                "delivery.send_windows.report:",
            ),
            (
                "[delivery.send_windows]\nreport = \"22:00-06:00\"\n",
                "does not cross midnight",
            ),
            (
                "[delivery]\nquiet_hours = \"21:00-08:00\"\n[delivery.send_windows]\nmanual = \"22:00-23:00\"\n",
                "delivery.send_windows.manual: it is inside quiet_hours all along",
            ),
        ] {
            let err = convert_text(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn the_channel_policy_is_checked_where_it_is_written() {
        use crate::config::ChannelPolicy;
        use crate::domain::{Channel, Kind};
        let c = convert_text("").unwrap();
        assert_eq!(c.reminders.policy(Kind::LoanD1), ChannelPolicy::All);
        assert_eq!(
            c.reminders.channel_order,
            [Channel::Whatsapp, Channel::Sms, Channel::Email]
        );
        assert_eq!(c.reminders.fallback_after, chrono::Duration::minutes(30));
        let first = "[reminders]\nchannels = \"First\"\nchannel_order = [\"WhatsApp\", \"SMS\", \"email\"]\n\
                     fallback_after_minutes = 5\n[reminders.channels_by_kind]\nloan_created = \"all\"\n";
        let c = convert_text(&format!(
            "{first}[whatsapp]\ntransport = \"file\"\nsms_from = \"+15005550006\"\n"
        ))
        .unwrap();
        assert_eq!(c.reminders.policy(Kind::LoanD1), ChannelPolicy::First);
        assert_eq!(c.reminders.policy(Kind::LoanCreated), ChannelPolicy::All);
        assert_eq!(c.reminders.fallback_after, chrono::Duration::minutes(5));
        // No whatsapp.from, no [email]: what no transport carries is left
        // out, with a warning, so a reminder goes on SMS at once.
        assert_eq!(c.reminders.channel_order, [Channel::Sms]);
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("reminders.channel_order: whatsapp, email left out")),
            "{:?}",
            c.warnings
        );
        let err = convert_text("[reminders.channels_by_kind]\nloan_created = \"all\"\nLOAN_CREATED = \"first\"\n")
            .unwrap_err();
        assert!(err.contains("loan_created is named twice"), "{err}");
        for (text, says) in [
            ("channels = \"one\"", "reminders.channels: \"one\""),
            ("channel_order = [\"sms\", \"fax\"]", "unknown channel \"fax\""),
            ("channel_order = [\"sms\", \"sms\"]", "\"sms\" is named twice"),
            ("channel_order = []", "reminders.channel_order: empty"),
            ("fallback_after_minutes = 0", "reminders.fallback_after_minutes"),
            (
                "channels_by_kind = { loan_later = \"all\" }",
                "unknown kind \"loan_later\"",
            ),
            (
                "channels_by_kind = { loan_d1 = \"some\" }",
                "reminders.channels_by_kind.loan_d1: \"some\"",
            ),
        ] {
            let err = convert_text(&format!("[reminders]\n{text}\n")).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn kind_lists_in_any_case_and_separator_and_phone_regions() {
        let c = convert_text("[reminders]\ndisabled_kinds = [\" Loan_D1 ; LOAN_D2\", \"manual\"]\n").unwrap();
        use crate::domain::Kind;
        assert_eq!(c.reminders.disabled_kinds, [Kind::LoanD1, Kind::LoanD2, Kind::Manual]);
        let err = convert_text("[reminders]\ndisabled_kinds = [\"loan_d1, loan_tomorrow\"]\n").unwrap_err();
        assert!(err.contains("\"loan_tomorrow\""), "{err}");
        let err = convert_text("[reminders]\ndisabled_kinds = [\"delay_alert\"]\n").unwrap_err();
        assert!(err.contains("unknown kind \"delay_alert\""), "{err}");
        let w = "[whatsapp]\ntransport = \"file\"\n";
        let c = convert_text(&format!("{w}default_region = \"ga\"\n")).unwrap();
        assert_eq!(c.whatsapp.and_then(|w| w.default_region), "GA".parse().ok());
        let err = convert_text(&format!("{w}default_region = \"France\"\n")).unwrap_err();
        assert!(err.contains("whatsapp.default_region"), "{err}");
    }

    #[test]
    fn every_invalid_recipient_is_named_at_once() {
        let err = convert_text("[delay_alerts]\nrecipients = [\"a@@x.com\", \"ok@x.com\", \"nobody\"]\n").unwrap_err();
        assert!(err.contains("recipients[0]") && err.contains("recipients[2]"), "{err}");
        assert!(!err.contains("recipients[1]"), "{err}");
        let c = convert_text("[delay_alerts]\nrecipients = [\"Atelier <Lead@Example.COM>\"]\n").unwrap();
        assert_eq!(c.delay_alerts.recipients[0].to_string(), "Lead@example.com");
    }

    #[test]
    fn relative_paths_are_resolved_from_the_config_folder() {
        let c = convert_text("database = \"data/r.db\"\n").unwrap();
        assert_eq!(c.database, Path::new("/srv/app/data/r.db"));
    }

    #[test]
    fn plain_smtp_only_to_loopback() {
        let base = "[email]\nfrom = \"a@example.com\"\n[email.smtp]\nsecurity = \"none\"\nhost = ";
        assert!(convert_text(&format!("{base}\"127.0.0.1\"\n")).is_ok());
        let err = convert_text(&format!("{base}\"smtp.example.com\"\n")).unwrap_err();
        assert!(err.contains("email.smtp.security"), "{err}");
    }

    #[test]
    fn lease_must_exceed_four_timeouts() {
        let text = "[email]\nfrom = \"a@example.com\"\n[email.smtp]\nhost = \"localhost\"\ntimeout_s = 200\n";
        let err = convert_text(text).unwrap_err();
        assert!(err.contains("delivery.lease_s"), "{err}");
    }

    #[test]
    fn twilio_timeout_is_checked_against_the_lease() {
        let twilio = "[whatsapp]\naccount_sid = \"ACx\"\nauth_token = \"t\"\n";
        let err = convert_text(&format!("{twilio}timeout_s = 150\n")).unwrap_err();
        assert!(err.contains("4 x whatsapp.timeout_s (150 s)"), "{err}");
        let err = convert_text(&format!("{twilio}timeout_s = 0\n")).unwrap_err();
        assert!(err.contains("whatsapp.timeout_s"), "{err}");
        let cfg = convert_text(&format!("{twilio}timeout_s = 149\n")).unwrap();
        assert_eq!(cfg.whatsapp.map(|w| w.timeout.as_secs()), Some(149));
        let cfg = convert_text(twilio).unwrap();
        assert_eq!(cfg.whatsapp.map(|w| w.timeout.as_secs()), Some(30), "the default");
    }

    #[test]
    fn absurd_numbers_are_errors_not_panics() {
        for (text, key) in [
            (
                "[email]\nfrom = \"a@example.com\"\n[email.smtp]\nhost = \"localhost\"\ntimeout_s = 9223372036854775807\n",
                "email.smtp.timeout_s",
            ),
            ("[delivery]\nrate_per_s = 1e-20\n", "delivery.rate_per_s"),
            ("[delay_alerts]\nrearm_hours = 4294967295\n", "delay_alerts.rearm_hours"),
            ("[delay_alerts.stage_threshold_days]\nX = 0\n", "stage_threshold_days"),
        ] {
            let err = convert_text(text).unwrap_err();
            assert!(err.contains(key), "{text:?} gave {err}");
        }
    }

    #[test]
    fn stage_override_beats_default_threshold() {
        let c = convert_text(
            "[delay_alerts]\nthreshold_days = 14\n[delay_alerts.stage_threshold_days]\n\"Attente pièce\" = 21\n",
        )
        .unwrap();
        assert_eq!(c.delay_alerts.threshold_for("Attente pièce"), 21);
        assert_eq!(c.delay_alerts.threshold_for("Diagnostic"), 14);
    }

    #[test]
    fn attendance_services_are_checked() {
        let service = |extra: &str| {
            format!(
                "[attendance.services.rh]\nbase_url = \"https://hr.example.com/\"\nattendance_endpoint = \"/att\"\nauth = \"none\"\n{extra}"
            )
        };
        let c = convert_text(&service("terminals = [\"A\"]\n")).unwrap();
        let rh = &c.attendance.services[0];
        assert_eq!(
            (rh.batch_size, rh.timeout.as_secs(), c.attendance.max_attempts),
            (100, 30, 10)
        );
        assert!(matches!(&rh.transport, HrTransport::Http { base_url, .. } if base_url == "https://hr.example.com"));
        for (text, key) in [
            (
                service("").replace("https://hr.example.com/", "http://hr.example.com"),
                "base_url",
            ),
            (
                service("").replace("https://hr.example.com/", "https://u:p@hr.example.com"),
                "base_url",
            ),
            (
                service("").replace("auth = \"none\"", "auth = \"basic\"\npassword = \"x\""),
                "username",
            ),
            (service("").replace("auth = \"none\"\n", ""), "token_env"),
            (service("").replace("/att", "att"), "attendance_endpoint"),
            (service("batch_size = 0\n"), "batch_size"),
            (service("timeout_s = 400\n"), "lease_s"),
            (service("").replace("services.rh]", "services.\"r h\"]"), "service name"),
            (
                format!(
                    "{}[attendance.services.paie]\ntransport = \"file\"\nterminals = [\"B\", \"A\"]\n",
                    service("terminals = [\"A\"]\n")
                ),
                "\"A\" is listed also in attendance.services.",
            ),
            (
                format!("{}[attendance.services.paie]\ntransport = \"file\"\n", service("")),
                "like attendance.services",
            ),
        ] {
            let err = convert_text(&text).unwrap_err();
            assert!(err.contains(key), "{text:?} gave {err}");
        }
        assert!(convert_text(&service("").replace("https://hr.example.com/", "http://127.0.0.1:8080")).is_ok());
        let file = convert_text("[attendance.services.local]\ntransport = \"file\"\n").unwrap();
        assert!(
            matches!(&file.attendance.services[0].transport, HrTransport::File { dir } if dir.ends_with("outbox/attendance/local"))
        );
    }
}
