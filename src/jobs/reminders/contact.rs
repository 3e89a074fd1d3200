//! A person reminders go to: zone, language, the kinds they muted, and the
//! channels they enabled, each with its address or E.164 phone, or why it
//! cannot be used.

use crate::domain::Channel;
use chrono_tz::Tz;
use rusqlite::Row;
use rusqlite::types::ValueRef;

use crate::config::Locale;
use crate::jobs::{PlanCtx, PlanReport, column_flag, column_text};
use crate::recipient::{self, Region};

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

/// A host's boolean column: 0/1, or text such as "true"; NULL is `default`.
pub fn flag(v: ValueRef<'_>, default: bool) -> bool {
    column_flag(v).unwrap_or(default)
}

impl Contact {
    /// The contact in columns `at..at + 10` (id, name, email, phone, locale,
    /// timezone, email_enabled, whatsapp_enabled, sms_enabled, muted_kinds).
    /// `None` (with a warning naming `source`, the row that refers to the
    /// contact through `link`) when there is no such contact or its zone is
    /// not one.
    pub fn from_row(
        row: &Row<'_>,
        at: usize,
        (source, link): ((&str, i64), &str),
        ctx: &PlanCtx<'_>,
        report: &mut PlanReport,
    ) -> rusqlite::Result<Option<Contact>> {
        let Some(id) = row.get::<_, Option<i64>>(at)? else {
            log::warn!("{} id {}: {link} matches no row; skipped", source.0, source.1);
            report.data_errors += 1;
            return Ok(None);
        };
        let zone = match column_text(row.get_ref(at + 5)?)
            .as_deref()
            .map(str::trim)
            .filter(|z| !z.is_empty())
        {
            None => ctx.zone,
            Some(z) => match crate::config::parse_zone(z) {
                Ok(zone) => zone,
                Err(why) => {
                    log::warn!("contacts id {id}: timezone: {why}; skipped");
                    report.data_errors += 1;
                    return Ok(None);
                }
            },
        };
        Ok(Some(Contact {
            id,
            name: column_text(row.get_ref(at + 1)?).unwrap_or_default(),
            email: column_text(row.get_ref(at + 2)?)
                .map(|e| e.trim().to_string())
                .filter(|e| !e.is_empty()),
            phone: column_text(row.get_ref(at + 3)?)
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty()),
            locale: column_text(row.get_ref(at + 4)?).as_deref().and_then(Locale::parse),
            zone,
            email_enabled: flag(row.get_ref(at + 6)?, true),
            whatsapp_enabled: flag(row.get_ref(at + 7)?, false),
            sms_enabled: flag(row.get_ref(at + 8)?, false),
            muted: {
                let (known, unknown) = crate::config::kind_list(&column_text(row.get_ref(at + 9)?).unwrap_or_default());
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
        }))
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

#[cfg(test)]
mod tests {
    use super::flag;
    use rusqlite::types::ValueRef;

    #[test]
    fn host_booleans_in_their_usual_spellings() {
        for yes in [&b"1"[..], b"TRUE", b"True", b" yes ", b"on", b"t"] {
            assert!(flag(ValueRef::Text(yes), false), "{:?}", String::from_utf8_lossy(yes));
        }
        for no in [&b"0"[..], b"FALSE", b"No", b"off", b""] {
            assert!(!flag(ValueRef::Text(no), true), "{:?}", String::from_utf8_lossy(no));
        }
        assert!(flag(ValueRef::Integer(2), false));
        assert!(flag(ValueRef::Real(1.0), false));
        assert!(!flag(ValueRef::Integer(0), true));
        assert!(flag(ValueRef::Null, true) && !flag(ValueRef::Null, false));
        assert!(flag(ValueRef::Text(b"maybe"), true), "unknown text keeps the default");
    }
}
