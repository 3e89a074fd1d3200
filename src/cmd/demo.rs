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

/// What `rappel demo` was asked for.
pub struct Demo<'a> {
    /// The folder to build.
    pub dir: &'a Path,
    /// Generated tickets instead of the sample (benchmarks).
    pub scale: Option<u64>,
    pub no_run: bool,
    /// A PostgreSQL URL: the data goes to its schema `rappel_demo`.
    pub database: Option<&'a str>,
}

/// The schema `demo --database URL` builds in.
const SCHEMA: &str = "rappel_demo";

pub fn run(demo: &Demo<'_>, clock: Clock, verbosity: Verbosity, json: bool) -> anyhow::Result<Exit> {
    let (dir, no_run) = (demo.dir, demo.no_run);
    if let Some(url) = demo.database
        && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
    {
        return Err(fail(
            Exit::Usage,
            "--database: expected a PostgreSQL URL (postgres://user@host:5432/name); the demo's SQLite file goes in --dir",
        ));
    }
    let existed = dir.exists();
    let earlier = prepare_dir(dir)?;
    let built = build(demo, clock);
    match (&built, earlier) {
        // Nothing half-built is left: a folder whose config names a server
        // that did not answer, or a database without its data, would pass
        // for a demo. An earlier demo the folder held comes back.
        (Err(_), Some(earlier)) => put_back(&earlier, dir),
        (Err(_), None) if existed => {
            let _ = empty(dir);
        }
        (Err(_), None) => {
            let _ = std::fs::remove_dir_all(dir);
        }
        (Ok(_), Some(earlier)) => {
            let _ = std::fs::remove_dir_all(earlier);
        }
        (Ok(_), None) => {}
    }
    let (config, db, config_path) = built?;
    println!("demo folder: {}", dir.display());
    println!("  config:   {}", config_path.display());
    match db.server() {
        Some(server) => println!("  database: {} (schema {SCHEMA})", server.shown),
        None => println!("  database: {}", config.database.display()),
    }
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

/// Writes the demo's folders, config and data in `demo.dir` (made empty
/// by `prepare_dir`); returns its configuration, database and config path.
/// Errors: a file that cannot be written, a server that cannot be reached
/// or holds an earlier demo, data that cannot be written.
fn build(demo: &Demo<'_>, clock: Clock) -> anyhow::Result<(config::Config, crate::db::Database, std::path::PathBuf)> {
    let (dir, scale) = (demo.dir, demo.scale);
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
    let text = match demo.database {
        Some(url) => {
            CONFIG.replace("database = \"rappel.db\"\n", "")
                + &format!("\n[database]\nurl = {}\nschema = \"{SCHEMA}\"\n", toml_string(url))
        }
        None => CONFIG.to_string(),
    };
    std::fs::write(&config_path, text).with_context(|| format!("cannot write {}", config_path.display()))?;
    let config = config::load_file(&config_path)?;
    let db = config.db(false).creating();
    if let Some(server) = db.server() {
        let mut probe = crate::db::postgres::connect(server)?;
        if crate::db::postgres::migrate::version(&mut probe, SCHEMA)? > 0 {
            return Err(fail(
                Exit::Usage,
                format!(
                    "schema {SCHEMA} on {} holds an earlier demo; drop it first (DROP SCHEMA {SCHEMA} CASCADE)",
                    server.shown
                ),
            ));
        }
    }
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
    Ok((config, db, config_path))
}

/// The earlier demo set aside at `earlier` back at `dir`, in place of what
/// was made there.
fn put_back(earlier: &Path, dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::rename(earlier, dir);
}

/// Removes what is in `dir`, keeping it.
fn empty(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Makes `dir` empty: new, empty, or an earlier demo (reset). Anything else is refused.
/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Returns where an earlier demo in `dir` was moved, beside it, until the
/// new one is built (`None`: `dir` was new or empty, or the earlier demo
/// could not be moved and was removed).
fn prepare_dir(dir: &Path) -> anyhow::Result<Option<std::path::PathBuf>> {
    let mut earlier = None;
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
            let aside = dir.file_name().map(|name| {
                let mut name = name.to_os_string();
                name.push(format!(".rappel-demo-earlier-{}", std::process::id()));
                dir.with_file_name(name)
            });
            match aside {
                Some(aside) if std::fs::rename(dir, &aside).is_ok() => earlier = Some(aside),
                _ => std::fs::remove_dir_all(dir).with_context(|| format!("cannot reset {}", dir.display()))?,
            }
        }
    }
    let made = std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
        .or_exit(Exit::Usage)
        .and_then(|()| {
            Ok(std::fs::write(
                dir.join(MARKER),
                "made by rappel demo; running it again resets this folder\n",
            )?)
        });
    if let (Err(_), Some(earlier)) = (&made, &earlier) {
        put_back(earlier, dir);
    }
    made?;
    Ok(earlier)
}
