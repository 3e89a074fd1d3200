//! `rappel demo`: a folder with a sample database (data relative to now), a
//! configuration whose transports write files, and a run of every job, so one
//! command shows what rappel does. `--scale N` generates N tickets for benchmarks.

use std::path::Path;

use anyhow::Context;

use crate::clock::Clock;
use crate::config;
use crate::exit::{Exit, OrExit, fail};
use crate::output::Verbosity;
use crate::runner::{self, Ctx};
use crate::store;

const MARKER: &str = ".rappel-demo";
const CONFIG: &str = r#"# rappel demo configuration: every transport writes files under outbox/.
database = "rappel.db"
timezone = "Africa/Libreville"
locale = "fr"
site_url = "https://atelier.example.com"

[email]
from = "Atelier Démo <noreply@example.com>"
transport = "file"
outbox_dir = "outbox/email"

[delay_alerts]
threshold_days = 14
rearm_hours = 24
recipients = ["atelier@example.com"]
[delay_alerts.stage_threshold_days]
"Attente pièce" = 21

[whatsapp]
transport = "file"
outbox_dir = "outbox"
from = "whatsapp:+14155238886"
sms_from = "+15005550006"

[reminders]
loan_short_notice_terms = ["short"]

[attendance]
max_attempts = 10
[attendance.services.rh]
transport = "file"                        # batches written to outbox/attendance/rh/
batch_size = 100
terminals = ["TM20-001", "TM20-002"]

[reports]
attachments_dir = "reports"
[reports.definitions.open_tickets]
query = "SELECT reference AS \"Référence\", device AS \"Appareil\", customer AS \"Client\" FROM tickets WHERE closed_at IS NULL ORDER BY reference"
"#;

/// A one-page PDF for the demo's stored report.
const SAMPLE_PDF: &str = "%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]/Contents 4 0 R/Resources<</Font<</F1 5 0 R>>>>>>endobj\n4 0 obj<</Length 52>>stream\nBT /F1 24 Tf 72 760 Td (Rapport hebdomadaire) Tj ET\nendstream endobj\n5 0 obj<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n";

pub fn run(
    dir: &Path,
    scale: Option<u64>,
    no_run: bool,
    clock: Clock,
    verbosity: Verbosity,
    json: bool,
) -> anyhow::Result<Exit> {
    prepare_dir(dir)?;
    for sub in [
        "reports",
        "outbox/email",
        "outbox/whatsapp",
        "outbox/sms",
        "outbox/attendance",
    ] {
        std::fs::create_dir_all(dir.join(sub)).with_context(|| format!("cannot create {}", dir.join(sub).display()))?;
    }
    let config_path = dir.join("rappel.toml");
    std::fs::write(&config_path, CONFIG).with_context(|| format!("cannot write {}", config_path.display()))?;
    let config = config::load_file(&config_path)?;
    let db = config.db(false).creating();
    let mut conn = db.connect_current()?;
    let now = clock.now();
    match scale {
        Some(n) => store::demo::generate(&mut conn, n, now)?,
        None => {
            std::fs::write(dir.join("reports/hebdo.pdf"), SAMPLE_PDF)?;
            store::demo::sample(&mut conn, now)?;
        }
    }
    drop(conn);
    println!("demo folder: {}", dir.display());
    println!("  config:   {}", config_path.display());
    println!("  database: {}", config.database.display());
    if no_run {
        return Ok(Exit::Ok);
    }
    let ctx = Ctx::new(&config, clock, verbosity.max(Verbosity::Verbose), json);
    let mode = crate::domain::RunMode::default();
    let mut exit = runner::delay_alerts(&ctx, mode)?;
    exit = exit.max(runner::reports(&ctx, mode)?);
    exit = exit.max(runner::reminders(&ctx, mode, &[])?);
    exit = exit.max(runner::attendance::run(&ctx, mode, None)?);
    for (what, folder) in [
        ("emails", "outbox/email"),
        ("WhatsApp messages", "outbox/whatsapp"),
        ("SMS", "outbox/sms"),
        ("attendance batches", "outbox/attendance/rh"),
    ] {
        let outbox = dir.join(folder);
        let mut files: Vec<_> = match std::fs::read_dir(&outbox) {
            Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
            Err(_) => Vec::new(),
        };
        files.sort();
        println!("{what} written to {}:", outbox.display());
        for f in files {
            println!("  {}", f.display());
        }
    }
    Ok(exit)
}

/// Makes `dir` empty: new, empty, or an earlier demo (reset). Anything else is refused.
fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))
            .or_exit(Exit::Usage)?;
        if entries.next().is_some() {
            if !dir.join(MARKER).exists() {
                return Err(fail(
                    Exit::Usage,
                    format!(
                        "{} is not empty and was not made by `rappel demo`; choose another --dir",
                        dir.display()
                    ),
                ));
            }
            std::fs::remove_dir_all(dir).with_context(|| format!("cannot reset {}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
        .or_exit(Exit::Usage)?;
    std::fs::write(
        dir.join(MARKER),
        "made by rappel demo; running it again resets this folder\n",
    )?;
    Ok(())
}
