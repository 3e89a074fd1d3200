//! `rappel retry` and `rappel cancel`: an operator's hand on the delivery
//! ledger, without SQL. `retry` puts failed, waiting (or, named by id,
//! cancelled) messages back to `pending`, due now, with a fresh set of
//! attempts; `cancel` ends pending ones as `cancelled` (DESIGN §9). Neither
//! ever touches a sent message or one being sent. Each prints what it
//! changed, `--dry-run` what it would change; a report row follows its
//! messages' new state.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cli::{RetryArgs, Selection};
use crate::engine::record::{Outcome, SourceHook};
use crate::exit::{Exit, fail};
use crate::instant;
use crate::output::{Verbosity, printable};
use crate::runner::Ctx;
use crate::store;
use crate::store::deliveries::{self, HandRow as Found, Pick};

/// A named delivery left as it was, and why.
#[derive(Debug, Serialize)]
struct Kept {
    id: i64,
    why: String,
    /// Passed over by a filter (`--failed`, `--kind`, `--since`): said, but
    /// not an error, as an id named by hand would be.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    filtered: bool,
}

impl Found {
    /// Its `valid_until`, when that has passed at `now`: it would not be sent.
    fn expired(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.valid_until
            .as_deref()
            .and_then(instant::parse)
            .filter(|until| *until < now)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Action {
    Retry { failed_only: bool },
    Cancel,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Retry { .. } => "retry",
            Action::Cancel => "cancel",
        }
    }

    /// The statuses a filter selects.
    fn statuses(self) -> &'static [&'static str] {
        match self {
            Action::Retry { failed_only: true } => &["failed"],
            Action::Retry { failed_only: false } => &["failed", "pending"],
            Action::Cancel => &["pending"],
        }
    }

    /// Why a delivery named by id is left as it is, if so.
    fn refuses(self, f: &Found, now: DateTime<Utc>) -> Option<String> {
        let expired = f.expired(now);
        match (self, f.status.as_str()) {
            (_, "sent") => Some("it was sent".into()),
            (_, "sending") => Some("it is being sent right now".into()),
            // Channel fallback: its reminder went on on another channel.
            (Action::Retry { .. }, _) if f.replaced_by.is_some() => Some(format!(
                "delivery {} replaced it on the next channel; retry that one",
                f.replaced_by.unwrap_or_default()
            )),
            (Action::Retry { .. }, _) if expired.is_some() => Some(format!(
                "it was valid until {}; it would not be sent",
                expired.map(instant::format).unwrap_or_default()
            )),
            (Action::Retry { failed_only: true }, s) if s != "failed" => Some(format!("it is {s}, not failed")),
            (Action::Retry { .. }, "failed" | "pending" | "cancelled") => None,
            (Action::Cancel, "pending") => None,
            (Action::Cancel, "cancelled") => Some("it is already cancelled".into()),
            (_, s) => Some(format!("it is {s}")),
        }
    }
}

/// `rappel retry ID...|--kind K|--failed|--since D [--dry-run]`.
pub fn retry(ctx: &Ctx<'_>, args: &RetryArgs) -> anyhow::Result<Exit> {
    run(
        ctx,
        &args.select,
        Action::Retry {
            failed_only: args.failed,
        },
    )
}

/// `rappel cancel ID...|--kind K|--since D [--dry-run]`.
pub fn cancel(ctx: &Ctx<'_>, args: &Selection) -> anyhow::Result<Exit> {
    run(ctx, args, Action::Cancel)
}

fn run(ctx: &Ctx<'_>, sel: &Selection, action: Action) -> anyhow::Result<Exit> {
    let filtered = sel.kind.is_some() || sel.since.is_some() || matches!(action, Action::Retry { failed_only: true });
    if sel.ids.is_empty() && !filtered {
        let filters = match action {
            Action::Retry { .. } => "--failed, --kind or --since",
            Action::Cancel => "--kind or --since",
        };
        return Err(fail(
            Exit::Usage,
            format!(
                "name the deliveries to {}: their ids (rappel log shows them) or {filters}",
                action.name()
            ),
        ));
    }
    let now = ctx.clock.now();
    let db = ctx.config.db(sel.dry_run);
    let mut conn = db.connect_current()?;
    let tx = if sel.dry_run {
        store::begin_read(&mut conn)?
    } else {
        store::begin(&mut conn)?
    };
    let mut kept = Vec::new();
    let mut chosen = Vec::new();
    let since = sel.since.as_ref().map(|s| s.resolve(now, ctx.config.timezone));
    for f in find(&tx, sel, action, since)? {
        let refused = action.refuses(&f, now);
        match refused {
            None => chosen.push(f),
            // An id named by hand and left is an error (exit 65).
            Some(why) if sel.ids.contains(&f.id) => kept.push(Kept {
                id: f.id,
                why,
                filtered: false,
            }),
            // A filter passes over what is not in its statuses; a message
            // it would retry but that expired is said (not an error).
            Some(why) if matches!(action, Action::Retry { .. }) && f.expired(now).is_some() => kept.push(Kept {
                id: f.id,
                why,
                filtered: true,
            }),
            Some(_) => {}
        }
    }
    for id in &sel.ids {
        if !chosen.iter().any(|f| f.id == *id) && !kept.iter().any(|k| k.id == *id) {
            let why = if deliveries::exists(&tx, *id)? {
                "it does not match --kind or --since".to_string()
            } else {
                "there is no such delivery".to_string()
            };
            kept.push(Kept {
                id: *id,
                why,
                filtered: false,
            });
        }
    }
    if !sel.dry_run {
        change(&tx, &chosen, action, now, ctx)?;
        tx.commit()?;
    }
    print(ctx, action, sel.dry_run, &chosen, &kept);
    Ok(if kept.iter().all(|k| k.filtered) {
        Exit::Ok
    } else {
        Exit::DataErr
    })
}

/// The deliveries the selection names: by id (whatever their status, to say
/// why one is left), else those in the action's statuses matching the filters.
fn find(
    conn: &store::Conn,
    sel: &Selection,
    action: Action,
    since: Option<DateTime<Utc>>,
) -> crate::store::Result<Vec<Found>> {
    let pick = if sel.ids.is_empty() {
        Pick::Statuses(action.statuses())
    } else {
        Pick::Ids(&sel.ids)
    };
    deliveries::select(conn, pick, sel.kind, since)
}

/// Writes the change, each row again guarded by its status (a run that
/// claimed it meanwhile wins), then lets each report row follow.
fn change(
    tx: &store::Tx<'_>,
    chosen: &[Found],
    action: Action,
    now: DateTime<Utc>,
    ctx: &Ctx<'_>,
) -> crate::store::Result<()> {
    let mut sources: Vec<(String, i64, Option<String>)> = Vec::new();
    for f in chosen {
        let changed = match action {
            Action::Retry { .. } => deliveries::retry_by_hand(tx, f.id)?,
            Action::Cancel => deliveries::cancel_by_hand(tx, f.id)?,
        };
        if changed && let Some(source) = &f.source {
            sources.push(source.clone());
        }
    }
    sources.sort();
    sources.dedup();
    let reports =
        crate::jobs::reports::ReportsHook::new(&ctx.config.reports, ctx.config.timezone, ctx.config.naive_timezone);
    for (table, id, at) in &sources {
        if table == reports.table() {
            // A retried message reopens its row (sent or failed), when it
            // is still the row the message was made for.
            let same_row = crate::db::identity::instant_of(tx, table, *id)?
                .flatten()
                .map(instant::format)
                .is_some_and(|current| at.as_deref() == Some(current.as_str()));
            if matches!(action, Action::Retry { .. }) && same_row {
                crate::store::reports::reopen(tx, *id)?;
            }
            let outcome = Outcome {
                delivery_id: None,
                source_id: *id,
                source_at: at.as_deref(),
            };
            reports.after_outcome(tx, &outcome, now)?;
        }
    }
    Ok(())
}

fn print(ctx: &Ctx<'_>, action: Action, dry_run: bool, chosen: &[Found], kept: &[Kept]) {
    for k in kept {
        if k.filtered {
            log::warn!("delivery {}: left as it is: {}", k.id, k.why);
        } else {
            log::error!("delivery {}: not changed: {}", k.id, k.why);
        }
    }
    if ctx.json {
        println!(
            "{}",
            crate::output::json(
                &serde_json::json!({
                    "command": action.name(), "dry_run": dry_run,
                    "changed": chosen, "not_changed": kept,
                }),
                false
            )
        );
        return;
    }
    if ctx.verbosity == Verbosity::Quiet {
        return;
    }
    let (done, would) = match action {
        Action::Retry { .. } => ("retried", "would retry"),
        Action::Cancel => ("cancelled", "would cancel"),
    };
    let verb = if dry_run { would } else { done };
    for f in chosen {
        println!(
            "{verb} {} {} {} {} (was {})",
            f.id,
            printable(&f.kind),
            printable(&f.channel),
            printable(&f.recipient),
            f.status
        );
    }
    let then = match action {
        Action::Retry { .. } if !dry_run && !chosen.is_empty() => {
            "; they go at the next `rappel deliver` or run of their job"
        }
        _ => "",
    };
    println!("{verb} {} delivery(ies){then}", chosen.len());
}
