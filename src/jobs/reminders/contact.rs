//! A person reminders go to: zone, language, the kinds they muted, and the
//! channels they enabled, each with its address or E.164 phone, or why it
//! cannot be used.

use crate::domain::Channel;
use chrono_tz::Tz;

use crate::config::Locale;
use crate::jobs::{PlanCtx, PlanReport};
use crate::recipient::{self, Region};
use crate::store::reminders::ContactRow;

pub struct Contact {
    pub id: i64,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub locale: Option<Locale>,
    pub zone: Tz,
    pub email_enabled: bool,
    pub whatsapp_enabled: bool,
    pub sms_enabled: bool,
    muted: Vec<crate::domain::Kind>,
    region: Option<Region>,
    /// `channels()`, worked out once.
    channels: std::cell::OnceCell<Vec<(Channel, Result<String, String>)>>,
}

impl Contact {
    /// The contact a row joined (`store::reminders::ContactRow`). `None`
    /// (with a warning naming `source`, the row that refers to the contact
    /// through `link`) when there is no such contact or its zone is not one.
    pub fn from_row(
        row: ContactRow,
        (source, link): ((&str, i64), &str),
        ctx: &PlanCtx<'_>,
        report: &mut PlanReport,
    ) -> Option<Contact> {
        let Some(id) = row.id else {
            log::warn!("{} id {}: {link} matches no row; skipped", source.0, source.1);
            report.data_errors += 1;
            return None;
        };
        let zone = match row.timezone.as_deref().map(str::trim).filter(|z| !z.is_empty()) {
            None => ctx.zone,
            Some(z) => match crate::config::parse_zone(z) {
                Ok(zone) => zone,
                Err(why) => {
                    log::warn!("contacts id {id}: timezone: {why}; skipped");
                    report.data_errors += 1;
                    return None;
                }
            },
        };
        Some(Contact {
            id,
            name: row.name.unwrap_or_default(),
            email: row.email.map(|e| e.trim().to_string()).filter(|e| !e.is_empty()),
            phone: row.phone.map(|p| p.trim().to_string()).filter(|p| !p.is_empty()),
            locale: row.locale.as_deref().and_then(Locale::parse),
            zone,
            email_enabled: row.email_enabled,
            whatsapp_enabled: row.whatsapp_enabled,
            sms_enabled: row.sms_enabled,
            muted: {
                let (known, unknown) = crate::config::kind_list(&row.muted_kinds.unwrap_or_default());
                if !unknown.is_empty() {
                    report.warn_once(format!(
                        "contacts id {id}: muted_kinds names {} that rappel does not know ({}); ignored",
                        unknown.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", "),
                        crate::domain::Kind::reminder_names()
                    ));
                }
                known
            },
            region: ctx.phone_region,
            channels: std::cell::OnceCell::new(),
        })
    }

    pub fn muted(&self, kind: crate::domain::Kind) -> bool {
        self.muted.contains(&kind)
    }

    /// Each enabled channel with an address or phone: `(channel, Ok(the
    /// address, or the phone in E.164))`, or `Err(why it cannot be used)`
    /// (a failed delivery, DESIGN §9). A channel enabled without any value
    /// is left out.
    pub fn channels(&self) -> &[(Channel, Result<String, String>)] {
        self.channels.get_or_init(|| self.usable_channels())
    }

    fn usable_channels(&self) -> Vec<(Channel, Result<String, String>)> {
        let mut out = Vec::new();
        if self.email_enabled
            && let Some(email) = &self.email
        {
            out.push((
                Channel::Email,
                recipient::email(email).map_err(|why| format!("contact {}: {why}", self.id)),
            ));
        }
        if let Some(phone) = self
            .phone
            .as_deref()
            .filter(|_| self.whatsapp_enabled || self.sms_enabled)
        {
            let e164 = recipient::phone(phone, self.region).map_err(|why| format!("contact {}: {why}", self.id));
            if self.whatsapp_enabled {
                out.push((Channel::Whatsapp, e164.clone()));
            }
            if self.sms_enabled {
                out.push((Channel::Sms, e164));
            }
        }
        out
    }
}
