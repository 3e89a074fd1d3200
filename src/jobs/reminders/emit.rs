//! Turning one due reminder into messages: the checks every kind shares
//! (wanted, muted, due, still valid, already planned, a usable channel), one
//! rendering, then one message per channel, written as it is made.

use crate::domain::{Channel, Kind};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::contact::Contact;
use super::fallback::{self, Standing};
use super::render::Draft;
use super::writer::{self, Queue};
use super::{JOB, Reminders, content_payload};
use crate::config::{ChannelPolicy, Locale};
use crate::domain::planned::Planned;
use crate::instant;
use crate::jobs::{PlanCtx, PlanReport};
use crate::store::{self, Conn};

/// One reminder of one source row: due at `at`, not sent at or after `valid_until`.
pub struct Due {
    pub kind: crate::domain::Kind,
    pub source_table: &'static str,
    pub source_id: i64,
    /// The source row's own creation or scheduling instant (`db::identity`).
    pub source_at: Option<DateTime<Utc>>,
    /// What the message tells of, when it may change under the same row and
    /// slot date (a loan's due date: `db::identity::due_ref`).
    pub about: Option<String>,
    pub at: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
}

impl Due {
    /// `<kind>:<source id>@<source instant>:<local slot date>:<channel>:<contact id>`,
    /// then `:<about>` when the message tells of one (DESIGN §6 and §9): the
    /// instant and the contact name the row and the person, so a new row
    /// under a deleted one's id, or the same row for another person, is a new
    /// message; `about` (a loan's due date) makes a message whose content
    /// changed a new one.
    pub fn key(&self, contact: &Contact, channel: Channel) -> String {
        let local_date = self.at.with_timezone(&contact.zone).date_naive();
        let source = crate::db::identity::source_ref(self.source_id, self.source_at);
        let mut key = format!("{}:{source}:{local_date}:{channel}:{}", self.kind, contact.id);
        if let Some(about) = &self.about {
            key.push(':');
            key.push_str(about);
        }
        key
    }
}

/// A contact's channel with its address or phone, or why it cannot be used
/// (`Contact::channels`).
type ChannelTo = (Channel, Result<String, String>);

/// Where planned messages go: as drafts to the renderer and the planning
/// writer (`writer.rs`), or, in a dry run, rendered into a list to print.
enum Sink {
    Db(Queue),
    Dry(Vec<Planned>),
    /// The dedupe keys one source row gives now, whether planned or not, with
    /// the address or phone each would go to (or why it cannot be used);
    /// nothing rendered (the engine's last look before a send).
    Probe(Vec<(String, Result<String, String>)>),
}

pub struct Emitter<'a> {
    /// For the planners' reads (its own snapshot per query).
    pub conn: &'a Conn,
    pub r: &'a Reminders<'a>,
    pub ctx: &'a PlanCtx<'a>,
    /// When this job last ran: a reminder that expired since is counted once as skipped.
    since: DateTime<Utc>,
    /// Reminders due after this instant are not looked up in `rappel_deliveries`
    /// before they are made: no run of the job began after it, and a run
    /// plans only what is due by its start, so none of them was planned.
    /// Should one be, its insert does nothing (`ON CONFLICT DO NOTHING`).
    /// The end of time in a dry run or a probe: each key is looked up.
    unseen_after: DateTime<Utc>,
    sink: Sink,
    /// Only this source row (`table`, id): the planners read just it.
    only: Option<(&'static str, i64)>,
    /// Whether this run asked Twilio for its messages' statuses: without
    /// that, a WhatsApp or SMS message's silence does not make it fall
    /// through (`fallback::standing`).
    pub statuses_asked: bool,
    pub report: PlanReport,
}

impl<'a> Emitter<'a> {
    /// Reads through `reader`, hands messages to the planning writer.
    /// `last_started`: when the job's latest run before this one began
    /// (finished or not; `None`: no run is recorded).
    pub fn writing(
        reader: &'a Conn,
        queue: Queue,
        r: &'a Reminders<'a>,
        ctx: &'a PlanCtx<'a>,
        since: DateTime<Utc>,
        last_started: Option<DateTime<Utc>>,
    ) -> Self {
        Emitter {
            conn: reader,
            r,
            ctx,
            since,
            unseen_after: last_started.unwrap_or(DateTime::<Utc>::MIN_UTC),
            sink: Sink::Db(queue),
            only: None,
            report: PlanReport::default(),
            statuses_asked: false,
        }
    }

    /// Gathers the keys source row `only` gives now (see [`Emitter::probed`]).
    pub fn probing(conn: &'a Conn, r: &'a Reminders<'a>, ctx: &'a PlanCtx<'a>, only: (&'static str, i64)) -> Self {
        Emitter {
            conn,
            r,
            ctx,
            since: ctx.now,
            unseen_after: DateTime::<Utc>::MAX_UTC,
            sink: Sink::Probe(Vec::new()),
            only: Some(only),
            report: PlanReport::default(),
            statuses_asked: false,
        }
    }

    /// The keys a probe gathered, with their recipients.
    pub fn probed(self) -> Vec<(String, Result<String, String>)> {
        match self.sink {
            Sink::Probe(keys) => keys,
            _ => Vec::new(),
        }
    }

    /// Whether planning looks at `table` at all, and the one row it is
    /// narrowed to. `None`: skip the table; `Some(None)`: every row.
    pub fn only(&self, table: &str) -> Option<Option<i64>> {
        match self.only {
            None => Some(None),
            Some((t, id)) if t == table => Some(Some(id)),
            Some(_) => None,
        }
    }

    /// Whether this emitter is a probe (it also reads rows already sent).
    pub fn is_probe(&self) -> bool {
        matches!(self.sink, Sink::Probe(_))
    }

    /// Collects the messages (dry run).
    pub fn collecting(conn: &'a Conn, r: &'a Reminders<'a>, ctx: &'a PlanCtx<'a>, since: DateTime<Utc>) -> Self {
        Emitter {
            conn,
            r,
            ctx,
            since,
            unseen_after: DateTime::<Utc>::MAX_UTC,
            sink: Sink::Dry(Vec::new()),
            only: None,
            report: PlanReport::default(),
            statuses_asked: false,
        }
    }

    /// The report of what was read and made; in a dry run, with the
    /// messages. Messages handed to the writer are counted by it.
    pub fn finish(self) -> PlanReport {
        let mut report = self.report;
        if let Sink::Dry(messages) = self.sink {
            report.planned = messages.len() as u64;
            report.messages = messages;
        }
        report
    }

    /// Collects one rendered message in a dry run; one whose address or
    /// phone cannot be used is counted a failure instead.
    fn collect(&mut self, message: Planned) {
        if let Sink::Dry(messages) = &mut self.sink {
            match writer::failure(&message) {
                Some(failure) => self.report.failures.push(failure),
                None => messages.push(message),
            }
        }
    }

    /// When this job last ran (or a week ago).
    pub fn since(&self) -> DateTime<Utc> {
        self.since
    }

    /// Reports a row whose `column` is not a timestamp (exit 65); `what` says
    /// what is left out ("loan skipped").
    pub fn bad_instant(&mut self, table: &str, id: i64, column: &str, raw: Option<&str>, what: &str) {
        match raw {
            Some(v) => log::warn!("{table} id {id}: {column} {v:?} is not a timestamp; {what}"),
            None => log::warn!("{table} id {id}: {column} is empty; {what}"),
        }
        self.report.data_errors += 1;
    }

    /// Whether `kind` is worth computing for `contact`: not filtered out by
    /// `--kind`, not disabled, not muted.
    pub fn wants(&self, kind: Kind, contact: &Contact) -> bool {
        self.r.wanted(kind) && !contact.muted(kind)
    }

    /// Plans `due` for `contact` on each of their channels, unless it is not
    /// due yet, expired (counted skipped once), or already planned.
    /// `context` builds the template data in the contact's language.
    pub fn emit<C: Serialize>(
        &mut self,
        due: &Due,
        contact: &Contact,
        context: impl FnOnce(Locale) -> C,
    ) -> anyhow::Result<()> {
        let now = self.ctx.now;
        if !self.wants(due.kind, contact) || due.at > now {
            return Ok(());
        }
        let key = |channel: Channel| due.key(contact, channel);
        let what = || format!("{} for {} id {}", due.kind, due.source_table, due.source_id);
        let channels = contact.channels();
        if let Sink::Probe(keys) = &mut self.sink {
            // Validity and what was planned are the engine's to judge.
            keys.extend(channels.iter().map(|(channel, to)| (key(*channel), to.clone())));
            return Ok(());
        }
        let ToPlan { fresh, untouched } = self.to_plan(due, contact, channels)?;
        if now >= due.valid_until {
            // Counted once: not when any of its messages was planned before it
            // expired. No fallback after it expired either.
            if due.valid_until > self.since && untouched {
                self.report
                    .skipped
                    .push(format!("{}: expired at {}", what(), instant::format(due.valid_until)));
            }
            return Ok(());
        }
        if channels.is_empty() || (self.policy(due.kind) == ChannelPolicy::First && untouched && fresh.is_empty()) {
            if due.at > self.since {
                self.report
                    .skipped
                    .push(format!("{}: contact {} has no usable channel", what(), contact.id));
            }
            return Ok(());
        }
        if fresh.is_empty() {
            return Ok(());
        }
        let locale = contact.locale.unwrap_or(self.ctx.locale);
        let context = context(locale);
        let by_email = fresh.iter().any(|((channel, _), _, _)| *channel == Channel::Email);
        let mut messages = Vec::with_capacity(fresh.len());
        for (&(channel, ref usable), key, replaces) in fresh {
            let (recipient, failed) = match usable {
                Ok(to) => (to.clone(), None),
                Err(why) => {
                    let raw = if channel == Channel::Email {
                        &contact.email
                    } else {
                        &contact.phone
                    };
                    (raw.clone().unwrap_or_default(), Some(why.clone()))
                }
            };
            messages.push(Planned {
                source_table: Some(due.source_table),
                source_id: Some(due.source_id),
                source_at: due.source_at,
                contact_id: Some(contact.id),
                valid_until: Some(due.valid_until),
                payload: if channel == Channel::Whatsapp {
                    content_payload(self.r.whatsapp, due.kind, &context)?
                } else {
                    None
                },
                failed,
                due_at: Some(due.at),
                replaces,
                // Subject and bodies: rendered from the draft.
                ..Planned::new(JOB, due.kind, key, channel, recipient, String::new(), String::new())
            });
        }
        let draft = Draft {
            locale,
            kind: due.kind,
            data: crate::templates::data(&context),
            parts: crate::templates::Parts {
                html: by_email,
                short: !by_email || messages.len() > 1,
            },
            messages,
        };
        if let Sink::Db(queue) = &mut self.sink {
            return queue.push(draft);
        }
        match draft.render(self.ctx.templates) {
            Ok(messages) => messages.into_iter().for_each(|m| self.collect(m)),
            Err(e) => self.report.template_failed(&e),
        }
        Ok(())
    }

    /// Whether `emit` would make messages for `due` now: wanted, due, still
    /// valid, and a usable channel not yet planned. Lets a kind whose data is
    /// costly to gather (the weekly digest) gather it only when needed.
    pub fn would_emit(&self, due: &Due, contact: &Contact) -> store::Result<bool> {
        let now = self.ctx.now;
        if self.is_probe() || !self.wants(due.kind, contact) || due.at > now || now >= due.valid_until {
            return Ok(false);
        }
        Ok(!self.to_plan(due, contact, contact.channels())?.fresh.is_empty())
    }

    /// `kind`'s channel policy (`[reminders] channels`, `channels_by_kind`).
    fn policy(&self, kind: Kind) -> ChannelPolicy {
        self.r.cfg.policy(kind)
    }

    /// The messages to plan for `due` now, by the kind's channel policy.
    fn to_plan<'c>(&self, due: &Due, contact: &Contact, channels: &'c [ChannelTo]) -> store::Result<ToPlan<'c>> {
        match self.policy(due.kind) {
            ChannelPolicy::All => {
                let fresh = self.unplanned(due, contact, channels)?;
                Ok(ToPlan {
                    untouched: fresh.len() == channels.len(),
                    fresh,
                })
            }
            ChannelPolicy::First => self.next_channel(due, contact, channels),
        }
    }

    /// The channels whose message for `due` is not planned yet, each with
    /// its dedupe key.
    fn unplanned<'c>(&self, due: &Due, contact: &Contact, channels: &'c [ChannelTo]) -> store::Result<Fresh<'c>> {
        let mut out = Vec::with_capacity(channels.len());
        let unseen = due.at > self.unseen_after;
        for channel in channels {
            let key = due.key(contact, channel.0);
            if unseen || !store::deliveries::planned_already(self.conn, &key)? {
                out.push((channel, key, None));
            }
        }
        Ok(out)
    }

    /// Under `channels = "first"`: nothing while any channel's message for
    /// `due` is waiting, or once one reached the person or was cancelled
    /// (whatever channels the contact has now, in whatever order); else,
    /// along `channel_order`, the first channel not tried yet, its message
    /// naming the latest one that fell through (`fallback::standing`). A
    /// channel the contact cannot be reached on (an unusable phone) is
    /// recorded failed at planning and the next is planned with it.
    fn next_channel<'c>(&self, due: &Due, contact: &Contact, channels: &'c [ChannelTo]) -> store::Result<ToPlan<'c>> {
        let (now, after) = (self.ctx.now, self.r.cfg.fallback_after);
        // Due after every run began: no run planned any of its messages.
        let mut tried: Vec<(Channel, String, i64)> = Vec::new();
        if due.at <= self.unseen_after {
            for channel in Channel::ALL {
                let key = due.key(contact, channel);
                if let Some(attempt) = store::deliveries::attempt(self.conn, &key)? {
                    match fallback::standing(&attempt, now, after, self.statuses_asked) {
                        Standing::FellThrough => tried.push((channel, key, attempt.id)),
                        Standing::Waiting | Standing::Settled => {
                            return Ok(ToPlan {
                                fresh: Vec::new(),
                                untouched: false,
                            });
                        }
                    }
                }
            }
        }
        let untouched = tried.is_empty();
        let mut replaces = tried.iter().max_by_key(|(_, _, id)| *id).map(|(_, key, _)| key.clone());
        let mut fresh = Vec::new();
        for wanted in &self.r.cfg.channel_order {
            let Some(channel) = channels.iter().find(|(c, _)| c == wanted) else {
                continue;
            };
            if tried.iter().any(|(c, _, _)| c == wanted) {
                continue;
            }
            let key = due.key(contact, channel.0);
            fresh.push((channel, key.clone(), replaces.take()));
            if channel.1.is_ok() {
                break;
            }
            replaces = Some(key);
        }
        Ok(ToPlan { fresh, untouched })
    }
}

/// Messages to plan: each channel with its dedupe key, and the key of the
/// message it replaces on another channel (channel fallback).
type Fresh<'c> = Vec<(&'c ChannelTo, String, Option<String>)>;

/// What `Emitter::to_plan` found for a reminder.
struct ToPlan<'c> {
    fresh: Fresh<'c>,
    /// None of its messages was planned before.
    untouched: bool,
}
