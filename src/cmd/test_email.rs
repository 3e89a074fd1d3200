//! `rappel test-email --to ADDR`: plans one message of kind `test` and sends it
//! through the engine, so it meets the same transport, classification and log
//! as every other message.

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
    let planner = |conn: &mut crate::store::Conn, plan_ctx: &crate::jobs::PlanCtx<'_>| -> anyhow::Result<PlanReport> {
        let context = serde_json::json!({
            "to": address.to_string(),
            "now_local": templates::local_datetime(plan_ctx.now, plan_ctx.zone, plan_ctx.locale),
            "site_url": plan_ctx.site_url,
        });
        let rendered = plan_ctx
            .templates
            .render(plan_ctx.locale, KIND, &context)
            .or_exit(Exit::Config)?;
        let key = format!(
            "{KIND}:{}:{}",
            address.to_string().to_lowercase(),
            instant::format(plan_ctx.now)
        );
        let message = Planned::email(JOB, KIND, key, address.to_string(), rendered);
        let mut report = PlanReport::default();
        let tx = crate::store::begin(conn)?;
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
