//! The `[reports]` section: where stored report files live and the fallback
//! definitions used when a file is missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::raw::RawReports;

#[derive(Debug)]
pub struct ReportsConfig {
    /// `attachment_path` values must resolve inside this folder.
    pub attachments_dir: PathBuf,
    pub definitions: BTreeMap<String, ReportDefinition>,
    /// How long one definition's query may run before it is stopped and its
    /// report fails (default 60 s).
    pub query_timeout: std::time::Duration,
    /// How many rows one query may return before its report fails (default 100,000).
    pub query_max_rows: u64,
}

#[derive(Debug)]
pub struct ReportDefinition {
    /// A read-only SQL query whose rows make the report.
    pub query: String,
    /// An empty result sends nothing (the row is marked done, not failed).
    pub skip_if_empty: bool,
    /// Recurring rows: the next occurrence keeps `attachment_path`.
    pub keep_attachment: bool,
}

pub(super) fn convert(raw: Option<RawReports>, dir: &Path) -> Result<ReportsConfig, String> {
    let raw = raw.unwrap_or_default();
    let mut definitions = BTreeMap::new();
    for (name, d) in raw.definitions.unwrap_or_default() {
        if d.query.trim().is_empty() {
            return Err(format!(
                "reports.definitions.{name}.query: empty (expected a SELECT statement)"
            ));
        }
        definitions.insert(
            name,
            ReportDefinition {
                query: d.query,
                skip_if_empty: d.skip_if_empty.unwrap_or(false),
                keep_attachment: d.keep_attachment.unwrap_or(false),
            },
        );
    }
    Ok(ReportsConfig {
        attachments_dir: dir.join(raw.attachments_dir.as_deref().unwrap_or("reports")),
        definitions,
        query_timeout: std::time::Duration::from_secs(super::within(
            raw.query_timeout_s.unwrap_or(60),
            1,
            24 * 3_600,
            "reports.query_timeout_s",
        )?),
        query_max_rows: super::within(
            raw.query_max_rows.unwrap_or(100_000),
            1,
            10_000_000,
            "reports.query_max_rows",
        )?,
    })
}
