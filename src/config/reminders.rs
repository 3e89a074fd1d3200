//! The `[reminders]` and `[whatsapp]` sections: when each reminder kind is due
//! (local times), which kinds are off, and the Twilio account that carries
//! WhatsApp and SMS; how a reminder uses a contact's channels (all, or the
//! first that reaches them).

use crate::domain::{Channel, Kind};
use std::collections::BTreeMap;
use std::path::Path;

use chrono::{NaiveTime, Weekday};

use super::raw::{RawReminders, RawWhatsapp};
use super::{Secret, http_base, secret, within};

#[derive(Debug)]
pub struct RemindersConfig {
    pub loan_d2_at: NaiveTime,
    pub loan_d1_at: NaiveTime,
    pub loan_due_at: NaiveTime,
    pub loan_short_notice_hours: u32,
    pub loan_short_notice_terms: Vec<String>,
    pub loan_overdue_at: NaiveTime,
    pub loan_overdue_max: u32,
    pub session_eve_at: NaiveTime,
    pub session_day_at: NaiveTime,
    pub inactivity_days: u32,
    pub inactivity_at: NaiveTime,
    pub weekly_digest_at: (Weekday, NaiveTime),
    pub disabled_kinds: Vec<Kind>,
    /// `channels`: every channel a contact enabled, or the first that
    /// reaches them (DESIGN §9, delivery policy).
    pub channels: ChannelPolicy,
    /// `channels_by_kind`: kinds whose policy differs from `channels`.
    pub channels_by_kind: BTreeMap<Kind, ChannelPolicy>,
    /// `channel_order`: the order `first` tries channels in; a channel left
    /// out is not used under `first`.
    pub channel_order: Vec<Channel>,
    /// `fallback_after_minutes`: how long a WhatsApp or SMS message may go
    /// without Twilio reporting it delivered or read before the next channel
    /// is tried.
    pub fallback_after: chrono::Duration,
}

impl RemindersConfig {
    /// The channel policy of `kind`: its `channels_by_kind` entry, else `channels`.
    pub fn policy(&self, kind: Kind) -> ChannelPolicy {
        self.channels_by_kind.get(&kind).copied().unwrap_or(self.channels)
    }
}

/// How a reminder uses a contact's channels (`[reminders] channels`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelPolicy {
    /// One message on each channel the contact enabled.
    All,
    /// One message on the first usable channel of `channel_order`; the next
    /// is tried when it failed for good, was reported undelivered or failed,
    /// or was not reported delivered within `fallback_after_minutes`.
    First,
}

impl ChannelPolicy {
    fn parse(text: &str, key: &str) -> Result<ChannelPolicy, String> {
        match text.trim().to_lowercase().as_str() {
            "all" => Ok(ChannelPolicy::All),
            "first" => Ok(ChannelPolicy::First),
            _ => Err(format!("{key}: {text:?} (expected \"all\" or \"first\")")),
        }
    }
}

#[derive(Debug)]
pub enum WhatsappTransport {
    Twilio {
        account_sid: String,
        auth_token: Secret,
        api_base: String,
    },
    File {
        dir: std::path::PathBuf,
    },
}

#[derive(Debug)]
pub struct WhatsappConfig {
    pub transport: WhatsappTransport,
    /// `whatsapp:+14155238886`
    pub from: Option<String>,
    /// `+15005550006`
    pub sms_from: Option<String>,
    pub content_sids: BTreeMap<Kind, ContentTemplate>,
    pub timeout: std::time::Duration,
    /// The country a phone written without its country code is read in
    /// (ISO 3166-1 alpha-2, such as `FR`); `None`: such phones are unusable.
    pub default_region: Option<crate::recipient::Region>,
}

/// An approved WhatsApp template and the context paths of its variables.
#[derive(Clone, Debug)]
pub struct ContentTemplate {
    pub sid: String,
    pub variables: Vec<String>,
}

fn time(value: Option<&str>, default: &str, key: &str) -> Result<NaiveTime, String> {
    let v = value.unwrap_or(default);
    NaiveTime::parse_from_str(v.trim(), "%H:%M")
        .map_err(|_| format!("reminders.{key}: {v:?} (expected HH:MM on a 24-hour clock, such as \"09:00\")"))
}

fn weekly(value: Option<&str>) -> Result<(Weekday, NaiveTime), String> {
    let v = value.unwrap_or("sun 20:00");
    let expected = || format!("reminders.weekly_digest_at: {v:?} (expected a day and a time, such as \"sun 20:00\")");
    let (day, at) = v.trim().split_once(' ').ok_or_else(expected)?;
    let day: Weekday = day.trim().parse().map_err(|_| expected())?;
    let at = NaiveTime::parse_from_str(at.trim(), "%H:%M").map_err(|_| expected())?;
    Ok((day, at))
}

fn kinds(list: Vec<String>, key: &str) -> Result<Vec<Kind>, String> {
    let (known, unknown) = kind_list(&list.join(","));
    let not_reminders = known.iter().filter(|k| !k.is_reminder()).map(|k| k.as_str());
    match unknown.iter().map(String::as_str).chain(not_reminders).next() {
        Some(k) => Err(format!(
            "{key}: unknown kind {k:?} (expected one of {})",
            Kind::reminder_names()
        )),
        None => Ok(known),
    }
}

/// Under `channels = "first"` (for any kind), leaves out of `channel_order`
/// the channels no transport of this configuration carries (no `[email]`;
/// no `[whatsapp]`, or without `from` for WhatsApp or `sms_from` for SMS),
/// with a warning: a reminder goes on to a channel that can carry it rather
/// than wait on one that cannot.
pub(super) fn keep_sendable(
    r: &mut RemindersConfig,
    email: bool,
    whatsapp: Option<&WhatsappConfig>,
    warnings: &mut Vec<String>,
) {
    let first = r.channels == ChannelPolicy::First || r.channels_by_kind.values().any(|p| *p == ChannelPolicy::First);
    if !first {
        return;
    }
    let carried = |c: Channel| match c {
        Channel::Email => email,
        Channel::Whatsapp => whatsapp.is_some_and(|w| w.from.is_some()),
        Channel::Sms => whatsapp.is_some_and(|w| w.sms_from.is_some()),
    };
    let left: Vec<&str> = r
        .channel_order
        .iter()
        .filter(|c| !carried(**c))
        .map(|c| c.as_str())
        .collect();
    if !left.is_empty() {
        warnings.push(format!(
            "reminders.channel_order: {} left out: no transport carries {} (see [email], whatsapp.from and \
             whatsapp.sms_from)",
            left.join(", "),
            if left.len() == 1 { "it" } else { "them" }
        ));
        r.channel_order.retain(|c| carried(*c));
    }
}

/// `[reminders] channel_order`: known channels, each once; by default
/// WhatsApp, then SMS, then email.
fn channel_order(raw: Option<Vec<String>>) -> Result<Vec<Channel>, String> {
    let Some(names) = raw else {
        return Ok(vec![Channel::Whatsapp, Channel::Sms, Channel::Email]);
    };
    let mut order = Vec::new();
    for name in names {
        let channel = name.trim().to_lowercase().parse::<Channel>().map_err(|_| {
            format!("reminders.channel_order: unknown channel {name:?} (expected \"whatsapp\", \"sms\" or \"email\")")
        })?;
        if order.contains(&channel) {
            return Err(format!("reminders.channel_order: {name:?} is named twice"));
        }
        order.push(channel);
    }
    if order.is_empty() {
        return Err("reminders.channel_order: empty (name at least one channel)".into());
    }
    Ok(order)
}

/// The kinds named in a list as people write it (`muted_kinds`,
/// `disabled_kinds`): separated by `,` or `;`, in any case, with spaces.
/// Returns the known kinds (reminder kinds, `delay_alert`, `report`) and,
/// apart, the names that are not kinds.
pub fn kind_list(text: &str) -> (Vec<Kind>, Vec<String>) {
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    if text.trim().is_empty() {
        return (known, unknown);
    }
    for name in text
        .split([',', ';'])
        .map(|k| k.trim().to_lowercase())
        .filter(|k| !k.is_empty())
    {
        match name.parse::<Kind>() {
            Ok(kind) if kind != Kind::Test => known.push(kind),
            _ => unknown.push(name),
        }
    }
    (known, unknown)
}

pub(super) fn convert_reminders(
    raw: Option<RawReminders>,
    warnings: &mut Vec<String>,
) -> Result<RemindersConfig, String> {
    let r = raw.unwrap_or_default();
    let cfg = RemindersConfig {
        loan_d2_at: time(r.loan_d2_at.as_deref(), "09:00", "loan_d2_at")?,
        loan_d1_at: time(r.loan_d1_at.as_deref(), "09:00", "loan_d1_at")?,
        loan_due_at: time(r.loan_due_at.as_deref(), "08:00", "loan_due_at")?,
        loan_short_notice_hours: within(
            r.loan_short_notice_hours.unwrap_or(2),
            1,
            72,
            "reminders.loan_short_notice_hours",
        )?,
        loan_short_notice_terms: r
            .loan_short_notice_terms
            .unwrap_or_else(|| vec!["short".into(), "medium".into()]),
        loan_overdue_at: time(r.loan_overdue_at.as_deref(), "10:00", "loan_overdue_at")?,
        loan_overdue_max: within(r.loan_overdue_max.unwrap_or(14), 0, 365, "reminders.loan_overdue_max")?,
        session_eve_at: time(r.session_eve_at.as_deref(), "18:30", "session_eve_at")?,
        session_day_at: time(r.session_day_at.as_deref(), "08:00", "session_day_at")?,
        inactivity_days: within(r.inactivity_days.unwrap_or(3), 1, 365, "reminders.inactivity_days")?,
        inactivity_at: time(r.inactivity_at.as_deref(), "10:00", "inactivity_at")?,
        weekly_digest_at: weekly(r.weekly_digest_at.as_deref())?,
        disabled_kinds: kinds(r.disabled_kinds.unwrap_or_default(), "reminders.disabled_kinds")?,
        channels: ChannelPolicy::parse(r.channels.as_deref().unwrap_or("all"), "reminders.channels")?,
        channels_by_kind: {
            let mut by_kind = BTreeMap::new();
            for (name, policy) in r.channels_by_kind.unwrap_or_default() {
                let key = format!("reminders.channels_by_kind.{name}");
                let kind = match kinds(vec![name.clone()], "reminders.channels_by_kind")?.as_slice() {
                    [kind] => *kind,
                    _ => return Err(format!("{key}: not a kind")),
                };
                if by_kind.insert(kind, ChannelPolicy::parse(&policy, &key)?).is_some() {
                    return Err(format!("reminders.channels_by_kind: {kind} is named twice"));
                }
            }
            by_kind
        },
        channel_order: channel_order(r.channel_order)?,
        fallback_after: chrono::Duration::minutes(i64::from(within(
            r.fallback_after_minutes.unwrap_or(30),
            1,
            10_080,
            "reminders.fallback_after_minutes",
        )?)),
    };
    // Valid until local midnight: a slot late in the evening leaves cron little time.
    for (key, at) in [
        ("inactivity_at", cfg.inactivity_at),
        ("weekly_digest_at", cfg.weekly_digest_at.1),
    ] {
        if at >= NaiveTime::from_hms_opt(23, 0, 0).unwrap_or(NaiveTime::MIN) {
            warnings.push(format!(
                "reminders.{key} is {}: its reminder is valid only until local midnight, so a run must \
                 come before then or it is skipped",
                at.format("%H:%M")
            ));
        }
    }
    Ok(cfg)
}

pub(super) fn convert_whatsapp(
    raw: Option<RawWhatsapp>,
    path: &Path,
    dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<Option<WhatsappConfig>, String> {
    let Some(w) = raw else { return Ok(None) };
    let timeout_s = super::within(w.timeout_s.unwrap_or(30), 1, 3_600, "whatsapp.timeout_s")?;
    let transport = match w.transport.as_deref().unwrap_or("twilio") {
        "twilio" => {
            let account_sid = w
                .account_sid
                .filter(|s| s.starts_with("AC") && s.len() > 2)
                .ok_or("whatsapp.account_sid: missing (expected the Twilio account SID, starting with \"AC\")")?;
            let auth_token = secret::read(
                &secret::SecretSource {
                    key: "whatsapp.auth_token",
                    plain: w.auth_token.as_deref(),
                    env: w.auth_token_env.as_deref(),
                    file: w.auth_token_file.as_deref(),
                },
                path,
                dir,
                warnings,
            )?
            .ok_or("whatsapp.auth_token_env: missing (set auth_token_env or auth_token_file)")?;
            let api_base = http_base(
                "whatsapp.api_base",
                w.api_base.as_deref().unwrap_or("https://api.twilio.com"),
            )?;
            WhatsappTransport::Twilio {
                account_sid,
                auth_token,
                api_base,
            }
        }
        "file" => WhatsappTransport::File {
            dir: dir.join(w.outbox_dir.as_deref().unwrap_or("outbox")),
        },
        other => {
            return Err(format!(
                "whatsapp.transport: {other:?} (expected \"twilio\" or \"file\")"
            ));
        }
    };
    if let Some(from) = &w.from
        && !from.starts_with("whatsapp:+")
    {
        return Err(format!("whatsapp.from: {from:?} (expected \"whatsapp:+<number>\")"));
    }
    let mut content_sids = BTreeMap::new();
    for (name, t) in w.content_sids.unwrap_or_default() {
        let Some(kind) = name.parse::<Kind>().ok().filter(|k| k.is_reminder()) else {
            return Err(format!(
                "whatsapp.content_sids.{name}: unknown kind (expected one of {})",
                Kind::reminder_names()
            ));
        };
        if !t.sid.starts_with("HX") {
            return Err(format!(
                "whatsapp.content_sids.{kind}.sid: {:?} (expected a Content SID starting with \"HX\")",
                t.sid
            ));
        }
        content_sids.insert(
            kind,
            ContentTemplate {
                sid: t.sid,
                variables: t.variables,
            },
        );
    }
    let default_region = w
        .default_region
        .as_deref()
        .map(|r| {
            r.trim().to_ascii_uppercase().parse().map_err(|_| {
                format!("whatsapp.default_region: {r:?} (expected a country code such as \"FR\" or \"GA\")")
            })
        })
        .transpose()?;
    Ok(Some(WhatsappConfig {
        transport,
        from: w.from,
        sms_from: w.sms_from,
        content_sids,
        timeout: std::time::Duration::from_secs(timeout_s),
        default_region,
    }))
}
