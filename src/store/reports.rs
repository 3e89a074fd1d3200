//! `scheduled_reports`, the host's report rows, as send-reports reads them.
//! `query` runs a report definition's own read-only query.

pub mod query;
