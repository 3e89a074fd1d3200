//! `rappel show ID`: one delivery whole, as an operator needs it to answer
//! "what did we send, to whom, and why did it fail": its state, attempts
//! and last error, where it came from, the headers an email carries, the
//! text and HTML as stored (what was or will be sent), and a channel's
//! extras. `--json` prints every column.

use crate::exit::{Exit, fail};
use crate::instant;
use crate::output::printable;
use crate::runner::Ctx;
use crate::store::deliveries::Delivery;

/// Prints delivery `id`; exit 64 when there is none.
pub fn run(ctx: &Ctx<'_>, id: i64) -> anyhow::Result<Exit> {
    let conn = ctx.config.db(true).connect_current()?;
    let found = crate::store::deliveries::one(&conn, id)?;
    let Some(mut d) = found else {
        return Err(fail(
            Exit::Usage,
            format!("there is no delivery {id} (rappel log lists them)"),
        ));
    };
    let from = ctx.config.email.as_ref().map(|e| &e.from);
    if d.channel == "email"
        && let Some(from) = from
    {
        d.message_id = Some(crate::channels::email::message_id(&d.dedupe_key, from.email.domain()));
    }
    if ctx.json {
        println!("{}", crate::output::json(&d, false));
    } else {
        print!("{}", text(&d, from.map(ToString::to_string), ctx.config.timezone));
    }
    Ok(Exit::Ok)
}

/// The human form: fields, then headers, text and HTML, each in its section.
fn text(d: &Delivery, from: Option<String>, zone: chrono_tz::Tz) -> String {
    let when = |s: &str| match instant::parse(s) {
        Some(t) => format!("{} ({s})", t.with_timezone(&zone).format("%Y-%m-%d %H:%M:%S %Z")),
        None => s.to_string(),
    };
    let mut out = String::new();
    let mut field = |name: &str, value: Option<String>| {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            out.push_str(&format!("{name:<14}{}\n", printable(&v)));
        }
    };
    let status = match (&d.status[..], &d.provider_status) {
        (s, Some(p)) => format!("{s} (provider: {p})"),
        (s, None) => s.to_string(),
    };
    field("delivery", Some(d.id.to_string()));
    field("status", Some(status));
    field("job", Some(d.job.clone()));
    field("kind", Some(d.kind.clone()));
    field("channel", Some(d.channel.clone()));
    field(
        "replaces",
        d.replaces_id.map(|id| format!("delivery {id} (the channel before)")),
    );
    field(
        "replaced by",
        d.replaced_by.map(|id| format!("delivery {id} (the next channel)")),
    );
    field("recipient", Some(d.recipient.clone()));
    field("created", Some(when(&d.created_at)));
    field("sent", d.sent_at.as_deref().map(when));
    field("next attempt", d.next_attempt_at.as_deref().map(when));
    field("valid until", d.valid_until.as_deref().map(when));
    field(
        "attempts",
        Some(match &d.error_class {
            Some(class) => format!("{} (last failure: {class})", d.attempts),
            None => d.attempts.to_string(),
        }),
    );
    field("last error", d.last_error.clone());
    field("provider id", d.provider_ref.clone());
    field(
        "leased",
        d.lease_until
            .as_deref()
            .filter(|_| d.status == "sending")
            .map(|l| format!("until {} by run {}", when(l), d.claimed_by.as_deref().unwrap_or("?"))),
    );
    field(
        "source",
        d.source_table
            .as_ref()
            .zip(d.source_id)
            .map(|(t, i)| match &d.source_at {
                Some(at) => format!("{t} id {i} ({at})"),
                None => format!("{t} id {i}"),
            }),
    );
    field("contact id", d.contact_id.map(|c| c.to_string()));
    field("dedupe key", Some(d.dedupe_key.clone()));
    field(
        "attachment",
        d.attachment_name.as_ref().map(|n| {
            format!(
                "{n} ({}) from {}",
                d.attachment_type.as_deref().unwrap_or("?"),
                d.attachment_path.as_deref().unwrap_or("?")
            )
        }),
    );
    if d.channel == "email" {
        out.push_str("\n--- headers ---\n");
        if let Some(from) = from {
            out.push_str(&format!("From: {}\n", printable(&from)));
        }
        out.push_str(&format!("To: {}\n", printable(&d.recipient)));
        out.push_str(&format!("Subject: {}\n", printable(&d.subject)));
        if let Some(id) = &d.message_id {
            out.push_str(&format!("Message-ID: {id}\n"));
        }
        out.push_str(&format!("X-Rappel-Kind: {}\n", printable(&d.kind)));
    } else if !d.subject.is_empty() {
        out.push_str(&format!("\n--- subject ---\n{}\n", printable(&d.subject)));
    }
    out.push_str(&format!("\n--- text ---\n{}\n", printable_block(&d.body)));
    if let Some(html) = &d.html_body {
        out.push_str(&format!("\n--- html ---\n{}\n", printable_block(html)));
    }
    if let Some(payload) = &d.payload {
        out.push_str(&format!("\n--- payload ---\n{}\n", printable_block(payload)));
    }
    out
}

/// A multi-line text with each line made printable (line breaks kept).
fn printable_block(text: &str) -> String {
    text.trim_end()
        .lines()
        .map(|l| printable(l).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}
