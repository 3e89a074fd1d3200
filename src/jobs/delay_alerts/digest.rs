//! Who receives delay alerts, and the one digest each gets: recipients from
//! `alert_recipients` and the configuration, merged by address; entries
//! filtered by stage, longest in stage first.

use std::collections::HashMap;

use anyhow::Context;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::{Entry, JOB, KIND};
use crate::config::{DelayAlertsConfig, Locale};
use crate::domain::planned::Planned;

use crate::exit::{Exit, OrExit};
use crate::instant;
use crate::jobs::{PlanCtx, PlanReport};
use crate::store::{Conn, tickets};

pub(super) struct Recipient {
    contact_id: Option<i64>,
    name: String,
    email: String,
    /// Why `email` (as written) cannot be used: the digest is recorded failed.
    invalid: Option<String>,
    locale: Option<Locale>,
    /// `None`: the configured zone.
    zone: Option<Tz>,
    /// `None`: every stage.
    stages: Option<Vec<String>>,
}

/// Whether two addresses are one as the planner merges them: lower-cased
/// whole, Unicode and all (`recipients`' key).
pub(super) fn same_address(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

/// Whether `address` is among `recipients` (as [`recipients`] lists them
/// now), usable, and gets alerts for one of `stages` at least: whether a
/// digest of entries in `stages` would go to it if planned now.
pub(super) fn still_gets(recipients: &[Recipient], address: &str, stages: &[&str]) -> bool {
    recipients.iter().any(|r| {
        r.invalid.is_none()
            && same_address(&r.email, address)
            && r.stages
                .as_ref()
                .is_none_or(|list| stages.iter().any(|s| list.iter().any(|l| l == s)))
    })
}

/// Active `alert_recipients` plus config `recipients`, merged by address
/// (case-insensitively); a contact without a usable address is skipped.
/// `warn`: whether a contact's unusable time zone is logged (the planner),
/// or only counted (the last look, which reads them again for each claim).
pub(super) fn recipients(
    conn: &Conn,
    cfg: &DelayAlertsConfig,
    report: &mut PlanReport,
    warn: bool,
) -> anyhow::Result<Vec<Recipient>> {
    let mut list: Vec<Recipient> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut add = |r: Recipient, list: &mut Vec<Recipient>| {
        let key = r.email.to_lowercase();
        match index.get(&key) {
            Some(&i) => {
                let existing = &mut list[i];
                existing.stages = match (existing.stages.take(), r.stages) {
                    (Some(mut a), Some(b)) => {
                        a.extend(b);
                        Some(a)
                    }
                    _ => None,
                };
            }
            None => {
                index.insert(key, list.len());
                list.push(r);
            }
        }
    };
    for row in tickets::alert_recipients(conn)? {
        if !row.active {
            continue;
        }
        let contact_id = row.contact_id;
        let name = row.name;
        let raw = row.email.trim().to_string();
        let (email, invalid) = match crate::recipient::email(&raw) {
            Ok(email) => (email, None),
            Err(why) => (raw, Some(format!("contact {contact_id}: {why}"))),
        };
        let enabled = row.email_enabled.unwrap_or(true);
        let muted = row.muted_kinds;
        let skip = if email.is_empty() {
            Some("has no email address")
        } else if !enabled {
            Some("has email disabled")
        } else if crate::config::kind_list(&muted).0.contains(&KIND) {
            Some("muted delay_alert")
        } else {
            None
        };
        if let Some(why) = skip {
            report.skipped.push(format!("contact {contact_id} ({name}) {why}"));
            continue;
        }
        let stages = row.stages.map(|list| {
            list.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        });
        let locale = row.locale.as_deref().and_then(Locale::parse);
        let zone = match row.timezone.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(name) => match crate::config::parse_zone(name) {
                Ok(zone) => Some(zone),
                Err(why) => {
                    if warn {
                        log::warn!(
                            "contacts id {contact_id}: timezone: {why}; no alert goes to this recipient until it is fixed"
                        );
                    }
                    report.data_errors += 1;
                    continue;
                }
            },
        };
        add(
            Recipient {
                contact_id: Some(contact_id),
                name,
                email,
                invalid,
                locale,
                zone,
                stages,
            },
            &mut list,
        );
    }
    for address in &cfg.recipients {
        let email = address.to_string();
        add(
            Recipient {
                contact_id: None,
                name: email.clone(),
                email,
                invalid: None,
                locale: None,
                zone: None,
                stages: None,
            },
            &mut list,
        );
    }
    Ok(list)
}

impl Entry {
    /// One line of a dry run's detail, in the digest's locale:
    /// `R-1001 iPhone 13 (Marie): Attente pièce depuis 30 jours, seuil 21`.
    fn detail(&self, locale: Locale) -> String {
        let what = format!("{} {} ({})", self.reference, self.device, self.customer);
        let (days, threshold) = (self.days, self.threshold);
        let text = match locale {
            Locale::Fr => format!(
                "{} depuis {days} jour{}, seuil {threshold}",
                self.stage,
                if days > 1 { "s" } else { "" }
            ),
            Locale::En => format!(
                "{} for {days} day{}, threshold {threshold}",
                self.stage,
                if days == 1 { "" } else { "s" }
            ),
        };
        crate::templates::labelled(locale, &what, &text)
    }
}

/// The template data of one digest; borrowed, so a large digest is not copied.
#[derive(Serialize)]
struct DigestCtx<'a> {
    recipient: RecipientCtx<'a>,
    entries: &'a [&'a Entry],
    count: usize,
    now_local: &'a str,
    site_url: Option<&'a str>,
}

#[derive(Serialize)]
struct RecipientCtx<'a> {
    name: &'a str,
    email: &'a str,
}

/// Renders one digest per recipient with at least one due entry of its stages
/// and hands each to `emit` in turn, so only one is in memory at a time.
pub(super) fn each_digest(
    recipients: &[Recipient],
    due: &[Entry],
    ctx: &PlanCtx<'_>,
    skipped: &mut Vec<String>,
    mut emit: impl FnMut(Planned, &[&Entry]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut covered = vec![false; due.len()];
    for r in recipients {
        let mut mine: Vec<&Entry> = Vec::new();
        for (i, e) in due.iter().enumerate() {
            if r.stages.as_ref().is_none_or(|s| s.iter().any(|st| st == &e.stage)) {
                covered[i] = true;
                mine.push(e);
            }
        }
        if mine.is_empty() {
            continue;
        }
        mine.sort_by(|a, b| a.entered.cmp(&b.entered).then_with(|| a.reference.cmp(&b.reference)));
        let locale = r.locale.unwrap_or(ctx.locale);
        let now_local = crate::templates::local_datetime(ctx.now, r.zone.unwrap_or(ctx.zone), locale);
        let context = DigestCtx {
            recipient: RecipientCtx {
                name: &r.name,
                email: &r.email,
            },
            entries: &mine,
            count: mine.len(),
            now_local: &now_local,
            site_url: ctx.site_url,
        };
        // A template that fails stops the whole run (exit 78), unlike a
        // reminder's or a report's: an entry is alerted once for all its
        // recipients, so a digest that went to one would mark it alerted
        // for the others too, who would then wait a whole re-arm period.
        let rendered = ctx
            .templates
            .render(locale, KIND, &context)
            .context("delay_alert templates")
            .or_exit(Exit::Config)?;
        let detail = if ctx.dry_run {
            mine.iter().map(|e| e.detail(locale)).collect()
        } else {
            Vec::new()
        };
        let key = format!("{KIND}:{}:{}", r.email.to_lowercase(), instant::format(ctx.now));
        let message = Planned {
            contact_id: r.contact_id,
            failed: r.invalid.clone(),
            detail,
            // The earliest re-arm slot among its entries.
            due_at: mine.iter().map(|e| e.slot.unwrap_or(ctx.now)).min(),
            ..Planned::email(JOB, KIND, key, r.email.clone(), rendered)
        };
        emit(message, &mine)?;
    }
    for (e, _) in due.iter().zip(&covered).filter(|(_, c)| !**c) {
        log::warn!(
            "ticket {} is overdue in stage {:?} but no recipient covers that stage",
            e.reference,
            e.stage
        );
        skipped.push(format!("ticket {}: no recipient for stage {:?}", e.reference, e.stage));
    }
    Ok(())
}

/// Template data for `config check`: two entries, with optional values present or absent.
pub fn sample_context(optional_present: bool) -> serde_json::Value {
    let entry = |reference: &str, days: i64| Entry {
        event_id: 0,
        ticket_id: 0,
        entered: DateTime::<Utc>::UNIX_EPOCH,
        entered_id: DateTime::<Utc>::UNIX_EPOCH,
        slot: None,
        reference: reference.into(),
        device: "iPhone 13".into(),
        customer: "Marie <Ndong>".into(),
        stage: "Attente pièce".into(),
        days,
        threshold: 14,
    };
    serde_json::json!({
        "recipient": { "name": "Atelier", "email": "atelier@example.com" },
        "entries": [entry("R-0001", 30), entry("R-0002", 15)],
        "count": 2,
        "now_local": "21/11/2026 07:00",
        "site_url": optional_present.then_some("https://example.com"),
    })
}

#[cfg(test)]
mod address_tests {
    use super::*;

    fn recipient(email: &str, stages: Option<&[&str]>) -> Recipient {
        Recipient {
            contact_id: Some(1),
            name: "Élodie".into(),
            email: email.into(),
            invalid: None,
            locale: None,
            zone: None,
            stages: stages.map(|s| s.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn an_address_is_matched_as_the_planner_merges_it() {
        assert!(
            same_address("Élodie@example.com", "élodie@example.com"),
            "not ASCII alone"
        );
        assert!(same_address("AWA@EXAMPLE.COM", "awa@example.com"));
        assert!(!same_address("awa@example.com", "awa.mba@example.com"));
        let list = [recipient("élodie@example.com", Some(&["Repair"]))];
        assert!(still_gets(&list, "Élodie@example.com", &["Diagnostic", "Repair"]));
        assert!(
            !still_gets(&list, "Élodie@example.com", &["Diagnostic"]),
            "its stages only"
        );
        let invalid = [Recipient {
            invalid: Some("not an address".into()),
            ..recipient("élodie@example.com", None)
        }];
        assert!(!still_gets(&invalid, "élodie@example.com", &["Repair"]));
    }
}
