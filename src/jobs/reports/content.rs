//! What a report sends: its stored file (inside `attachments_dir`), or, when
//! the file is missing, rows generated from its definition's read-only query
//! (an HTML table in the body and a CSV attachment). Never nothing: a report
//! without content fails with the reason.

use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::config::{Locale, ReportsConfig};
use crate::db::Database;
use crate::store::reports::query;
pub use crate::store::reports::query::Cell;

/// Rows shown in the email body; the attachment always has them all.
const TABLE_ROWS_IN_BODY: usize = 200;

/// The file sent with a report.
#[derive(Clone, Debug)]
pub struct Attachment {
    pub path: PathBuf,
    pub name: String,
    pub mime: &'static str,
    pub size: u64,
}

/// Generated rows, for the body's table.
#[derive(Clone, Debug, Serialize)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub row_count: usize,
    pub truncated: bool,
}

pub enum Content {
    Stored(Attachment),
    Generated {
        definition: String,
        table: Table,
        attachment: Attachment,
    },
    /// The definition returned no rows and says `skip_if_empty`.
    Empty {
        definition: String,
    },
}

impl Content {
    /// Where the content comes from, for a dry run's detail line, in the
    /// message's locale (the report mail's own language).
    pub fn describe(&self, locale: Locale) -> String {
        match (self, locale) {
            (Content::Stored(a), Locale::En) => {
                format!("stored file {} ({}, {} bytes)", a.path.display(), a.mime, a.size)
            }
            (Content::Stored(a), Locale::Fr) => {
                format!("fichier existant {} ({}, {} octets)", a.path.display(), a.mime, a.size)
            }
            (Content::Generated { definition, table, .. }, Locale::En) => format!(
                "generated from [reports.definitions.{definition}] ({} rows, CSV)",
                table.row_count
            ),
            (Content::Generated { definition, table, .. }, Locale::Fr) => format!(
                "généré par [reports.definitions.{definition}] ({} lignes, CSV)",
                table.row_count
            ),
            (Content::Empty { definition }, Locale::En) => {
                format!("[reports.definitions.{definition}] returned no rows")
            }
            (Content::Empty { definition }, Locale::Fr) => {
                format!("[reports.definitions.{definition}] n'a renvoyé aucune ligne")
            }
        }
    }
}

/// The report row fields content depends on.
pub struct Source<'a> {
    pub id: i64,
    pub attachment_path: Option<&'a str>,
    pub report: Option<&'a str>,
    /// Used in the generated file's name.
    pub local_date: String,
}

/// Finds or makes the content. `Err` is the reason the report cannot go.
/// `out_dir` receives generated CSV files (nothing is written when `None`: dry runs).
pub fn resolve(
    src: &Source<'_>,
    cfg: &ReportsConfig,
    db: &Database,
    out_dir: Option<&Path>,
) -> Result<Content, String> {
    let mut missing = None;
    if let Some(rel) = src.attachment_path.map(str::trim).filter(|p| !p.is_empty()) {
        match stored_file(rel, &cfg.attachments_dir)? {
            Some(attachment) => return Ok(Content::Stored(attachment)),
            None => missing = Some(rel),
        }
    }
    let Some(name) = src.report.map(str::trim).filter(|r| !r.is_empty()) else {
        return Err(match missing {
            Some(rel) => format!(
                "attachment {rel:?} not found in {} and no report definition to generate it",
                cfg.attachments_dir.display()
            ),
            None => "no attachment_path and no report definition: nothing to send".into(),
        });
    };
    let Some(definition) = cfg.definitions.get(name) else {
        return Err(format!(
            "report {name:?} is not defined under [reports.definitions]{}",
            missing
                .map(|m| format!(" (and attachment {m:?} was not found)"))
                .unwrap_or_default()
        ));
    };
    let query::Rows { columns, rows } = query::run(db, &definition.query, cfg.query_timeout, cfg.query_max_rows)
        .map_err(|e| format!("report {name:?}: the query failed: {e}"))?;
    if rows.is_empty() && definition.skip_if_empty {
        return Ok(Content::Empty {
            definition: name.to_string(),
        });
    }
    let file_name = format!("{name}-{}.csv", src.local_date);
    let csv = to_csv(&columns, &rows);
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| r.into_iter().map(Cell::into_text).collect())
        .collect();
    let path = match out_dir {
        Some(dir) => {
            // Per process: an overlapping run never overwrites a file whose
            // deliveries another run planned.
            let path = dir.join(format!("report-{}-{}-{file_name}", src.id, std::process::id()));
            crate::files::write_atomically(&path, csv.as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            // Its real path, as a stored file's: the send checks it is still that.
            path.canonicalize().unwrap_or(path)
        }
        None => PathBuf::new(),
    };
    let row_count = rows.len();
    let truncated = row_count > TABLE_ROWS_IN_BODY;
    let mut rows = rows;
    rows.truncate(TABLE_ROWS_IN_BODY);
    Ok(Content::Generated {
        definition: name.to_string(),
        table: Table {
            columns,
            rows,
            row_count,
            truncated,
        },
        attachment: Attachment {
            path,
            name: file_name,
            mime: "text/csv; charset=utf-8",
            size: csv.len() as u64,
        },
    })
}

/// The stored file, `None` when it does not exist; `Err` when the path
/// leaves `attachments_dir` (directly, through `..` or through a link).
fn stored_file(rel: &str, dir: &Path) -> Result<Option<Attachment>, String> {
    let escapes = || format!("attachment_path {rel:?} is outside attachments_dir {}", dir.display());
    let candidate = dir.join(rel);
    if !candidate.exists() {
        // Judge the path as written: `..` that climbs out of the folder is refused.
        let mut depth: i64 = 0;
        for c in Path::new(rel).components() {
            match c {
                Component::Normal(_) => depth += 1,
                Component::ParentDir => depth -= 1,
                Component::CurDir => {}
                Component::RootDir | Component::Prefix(_) => {
                    if !candidate.starts_with(dir) {
                        return Err(escapes());
                    }
                }
            }
            if depth < 0 {
                return Err(escapes());
            }
        }
        return Ok(None);
    }
    let real_dir = dir
        .canonicalize()
        .map_err(|e| format!("attachments_dir {}: {e}", dir.display()))?;
    let real = candidate
        .canonicalize()
        .map_err(|e| format!("{}: {e}", candidate.display()))?;
    if !real.starts_with(&real_dir) {
        return Err(escapes());
    }
    let meta = std::fs::metadata(&real).map_err(|e| format!("{}: {e}", real.display()))?;
    if !meta.is_file() {
        return Err(format!("attachment_path {rel:?} is not a file"));
    }
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    Ok(Some(Attachment {
        mime: mime_type(&name),
        name,
        size: meta.len(),
        path: real,
    }))
}

/// Prepares a definition's query as send-reports would run it, and reads
/// its first row (some refusals only come when it runs), for `config check`:
/// `Err` says why it cannot run.
pub fn check_query(db: &Database, query: &str, timeout: std::time::Duration) -> Result<(), String> {
    query::check(db, query, timeout)
}

/// RFC 4180 CSV, UTF-8 with a byte-order mark so spreadsheet programs read
/// accents correctly. A text cell a spreadsheet would run as a formula
/// (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a `'`
/// before it, as OWASP's CSV injection advice says; numbers, and text that
/// is only a number, are left as they are.
pub fn to_csv(columns: &[String], rows: &[Vec<Cell>]) -> String {
    fn field(out: &mut String, v: &str, text: bool) {
        let formula = text && v.starts_with(['=', '+', '-', '@', '\t', '\r']) && v.trim().parse::<f64>().is_err();
        let v = if formula { format!("'{v}") } else { v.to_string() };
        if v.contains([',', '"', '\n', '\r', ';']) {
            out.push('"');
            out.push_str(&v.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&v);
        }
    }
    let mut out = String::from("\u{feff}");
    for (i, name) in columns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        field(&mut out, name, true);
    }
    out.push_str("\r\n");
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match cell {
                Cell::Number(v) => field(&mut out, v, false),
                Cell::Text(v) => field(&mut out, v, true),
            }
        }
        out.push_str("\r\n");
    }
    out
}

/// The MIME type of a report file, by extension.
pub fn mime_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "pdf" => "application/pdf",
        "csv" => "text/csv",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "xls" => "application/vnd.ms-excel",
        "ods" => "application/vnd.oasis.opendocument.spreadsheet",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "odt" => "application/vnd.oasis.opendocument.text",
        "html" | "htm" => "text/html",
        "txt" => "text/plain",
        "json" => "application/json",
        "zip" => "application/zip",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let t = |s: &str| Cell::Text(s.into());
        let csv = to_csv(
            &["ref".into(), "note".into()],
            &[vec![t("A,1"), t("il a dit \"oui\"")], vec![t("é"), t("x\ny")]],
        );
        assert_eq!(
            csv,
            "\u{feff}ref,note\r\n\"A,1\",\"il a dit \"\"oui\"\"\"\r\né,\"x\ny\"\r\n"
        );
    }

    #[test]
    fn csv_formulas_are_neutralised_and_numbers_left_alone() {
        let t = |s: &str| Cell::Text(s.into());
        let n = |s: &str| Cell::Number(s.into());
        let csv = to_csv(
            &["a".into()],
            &[
                vec![t("=HYPERLINK(\"http://x/\")")],
                vec![t("+1+1")],
                vec![t("-2+3")],
                vec![t("@SUM(1)")],
                vec![t("\tx")],
                vec![n("-2")],
                vec![n("-0.5")],
                vec![t("-12.5")],
                vec![t("+33612345678")],
                vec![t("a=b")],
            ],
        );
        let lines: Vec<&str> = csv.trim_start_matches('\u{feff}').split("\r\n").collect();
        assert_eq!(
            lines[1..11],
            [
                "\"'=HYPERLINK(\"\"http://x/\"\")\"",
                "'+1+1",
                "'-2+3",
                "'@SUM(1)",
                "'\tx",
                "-2",
                "-0.5",
                "-12.5",
                "+33612345678",
                "a=b"
            ]
        );
    }

    #[test]
    fn paths_that_climb_out_are_refused_even_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(stored_file("../secret.pdf", dir.path()).is_err());
        assert!(stored_file("a/../../secret.pdf", dir.path()).is_err());
        assert!(stored_file("/etc/passwd", dir.path()).is_err());
        assert!(stored_file("a/../missing.pdf", dir.path()).unwrap().is_none());
    }

    #[cfg(unix)]
    #[test]
    fn a_link_out_of_the_folder_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.pdf"), "x").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.pdf"), dir.path().join("report.pdf")).unwrap();
        let err = stored_file("report.pdf", dir.path()).unwrap_err();
        assert!(err.contains("outside attachments_dir"), "{err}");
    }

    #[test]
    fn mime_types() {
        assert_eq!(mime_type("Rapport.PDF"), "application/pdf");
        assert_eq!(
            mime_type("x.xlsx"),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        );
        assert_eq!(mime_type("noext"), "application/octet-stream");
    }
}
