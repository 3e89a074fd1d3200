//! `rappel test-email --to ADDR`: plans one message of kind `test` and sends it
//! through the engine, so it meets the same transport, classification and log
//! as every other message.

use rusqlite::TransactionBehavior;

use crate::config::parse_address;
use crate::domain::planned::Planned;
use crate::exit::{Exit, OrExit, fail};
use crate::instant;
use crate::jobs::PlanReport;
use crate::runner::{self, Ctx};
use crate::templates;

pub const JOB: crate::domain::Job = crate::domain::Job::TestEmail;
pub const KIND: crate::domain::Kind = crate::domain::Kind::Test;

pub fn sample_context(optional_present: bool) -> serde_json::Value {
    serde_json::json!({
        "to": "someone@example.com",
        "now_local": "21/11/2026 07:00",
        "site_url": optional_present.then_some("https://example.com"),
    })
}

pub fn run(ctx: &Ctx<'_>, to: &str) -> anyhow::Result<Exit> {
    let address = parse_address(to).map_err(|e| fail(Exit::Usage, format!("--to: {e}")))?;
    let planner =
        |conn: &mut rusqlite::Connection, plan_ctx: &crate::jobs::PlanCtx<'_>| -> anyhow::Result<PlanReport> {
            let context = serde_json::json!({
                "to": address.to_string(),
                "now_local": templates::local_datetime(plan_ctx.now, plan_ctx.zone, plan_ctx.locale),
                "site_url": plan_ctx.site_url,
            });
            let rendered = plan_ctx
                .templates
                .render(plan_ctx.locale, KIND, &context)
                .or_exit(Exit::Config)?;
            let message = Planned {
                job: JOB,
                kind: KIND,
                dedupe_key: format!(
                    "{KIND}:{}:{}",
                    address.to_string().to_lowercase(),
                    instant::format(plan_ctx.now)
                ),
                source_table: None,
                source_id: None,
                source_at: None,
                contact_id: None,
                channel: crate::domain::Channel::Email,
                recipient: address.to_string(),
                subject: rendered.subject,
                body: rendered.text,
                html: rendered.html,
                valid_until: None,
                attachment: None,
                failed: None,
                payload: None,
                detail: vec![],
                due_at: None,
            };
            let mut report = PlanReport::default();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if crate::store::deliveries::insert(&tx, &message, plan_ctx.now)?.is_some() {
                report.planned += 1;
            }
            tx.commit()?;
            Ok(report)
        };
    runner::run_job(
        ctx,
        crate::domain::Run::Job(JOB),
        crate::domain::RunMode::default(),
        Some(&planner),
    )
}
