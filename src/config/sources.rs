//! `[sources.<table>]`: an input table read from the host application's own
//! table (`table` with `[sources.<table>.columns]`) or query (`query`)
//! instead of the contract table of that name (DESIGN §9; `db/sources.rs`
//! turns each into a view).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::db::host::CONTRACT;
use crate::db::sources::{KEPT, Origin, Source, never_mapped};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub table: Option<String>,
    pub query: Option<String>,
    pub columns: Option<BTreeMap<String, String>>,
    pub update: Option<BTreeMap<String, String>>,
}

/// Checks each `[sources.*]` entry: a known input table, `table` or `query`
/// (one of them), `columns` only with `table` and only for contract columns
/// rappel reads from the host, `update` only for what rappel records, no
/// empty value. Errors: one line naming the key.
/// `naive_zone`: `naive_timezone` (instants written back to the host go
/// without an offset when it is UTC; `Source::naive_zone`).
pub fn convert(raw: BTreeMap<String, RawSource>, naive_zone: chrono_tz::Tz) -> Result<Vec<Source>, String> {
    let mut sources = Vec::with_capacity(raw.len());
    for (name, raw) in raw {
        let Some(&(name, contract)) = CONTRACT.iter().find(|(t, _)| *t == name) else {
            let names: Vec<&str> = CONTRACT.iter().map(|(t, _)| *t).collect();
            return Err(format!(
                "sources.{name}: not an input table (expected one of {})",
                names.join(", ")
            ));
        };
        let nonempty = |key: &str, v: String| {
            if v.trim().is_empty() {
                Err(format!("sources.{name}.{key}: empty"))
            } else {
                Ok(v)
            }
        };
        let origin = match (raw.table, raw.query) {
            (Some(table), None) => Origin::Table(nonempty("table", table)?),
            (None, Some(query)) => {
                let query = nonempty("query", query)?;
                let query = query.trim().trim_end_matches(';').to_string();
                if raw.columns.is_some() {
                    return Err(format!(
                        "sources.{name}.columns: only with `table`; a query names its columns itself (`SELECT ... AS <column>`)"
                    ));
                }
                Origin::Query(query)
            }
            (Some(_), Some(_)) => return Err(format!("sources.{name}: `table` or `query`, not both")),
            (None, None) => {
                return Err(format!(
                    "sources.{name}: expected `table = \"<host table>\"` (with [sources.{name}.columns]) or `query = \"SELECT ...\"`"
                ));
            }
        };
        let mut columns = BTreeMap::new();
        for (column, expr) in raw.columns.unwrap_or_default() {
            if !contract.contains(&column.as_str()) {
                return Err(format!(
                    "sources.{name}.columns.{column}: not a column of {name} (expected one of {})",
                    contract.join(", ")
                ));
            }
            if let Some(why) = never_mapped(name, &column) {
                return Err(format!(
                    "sources.{name}.columns.{column}: not read from your table: {why}"
                ));
            }
            columns.insert(column.clone(), nonempty(&format!("columns.{column}"), expr)?);
        }
        let update = raw.update.unwrap_or_default();
        if !update.is_empty() {
            let Some(kept) = crate::db::sources::kept(name) else {
                let kept: Vec<&str> = KEPT.iter().map(|k| k.source).collect();
                return Err(format!(
                    "sources.{name}.update: rappel writes nothing about the rows of {name} (only about those of {})",
                    kept.join(", ")
                ));
            };
            if !matches!(origin, Origin::Table(_)) {
                return Err(format!(
                    "sources.{name}.update: only with `table` (a query has no one table to write to)"
                ));
            }
            for (what, column) in &update {
                if !kept.updates.iter().any(|(w, _)| w == what) {
                    return Err(format!(
                        "sources.{name}.update.{what}: not something rappel records (expected one of {})",
                        kept.updates.iter().map(|(w, _)| *w).collect::<Vec<_>>().join(", ")
                    ));
                }
                nonempty(&format!("update.{what}"), column.clone())?;
            }
        }
        sources.push(Source {
            name,
            origin,
            columns,
            update,
            naive_zone,
        });
    }
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<Vec<Source>, String> {
        #[derive(Deserialize)]
        struct Doc {
            sources: BTreeMap<String, RawSource>,
        }
        convert(
            toml::from_str::<Doc>(toml).map_err(|e| e.to_string())?.sources,
            chrono_tz::UTC,
        )
    }

    #[test]
    fn a_table_with_its_columns_or_a_query() {
        let s = parse(
            "[sources.tickets]\ntable = \"repairs_ticket\"\n[sources.tickets.columns]\nreference = \"numero\"\n\
             [sources.ticket_events]\nquery = \"select 1;\"\n",
        )
        .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "ticket_events");
        assert_eq!(s[0].origin, Origin::Query("select 1".into()));
        assert_eq!(s[1].origin, Origin::Table("repairs_ticket".into()));
        assert_eq!(s[1].columns["reference"], "numero");
    }

    #[test]
    fn each_mistake_names_its_key() {
        for (toml, says) in [
            (
                "[sources.ticket]\ntable = \"t\"\n",
                "sources.ticket: not an input table",
            ),
            (
                "[sources.attendance_logs]\ntable = \"t\"\n[sources.attendance_logs.columns]\nsync_lease_until = \"x\"\n",
                "sources.attendance_logs.columns.sync_lease_until: not read from your table",
            ),
            (
                "[sources.terminals]\ntable = \"t\"\n[sources.terminals.update]\nsynced = \"x\"\n",
                "rappel writes nothing about the rows of terminals (only about those of scheduled_reports, manual_reminders, attendance_logs)",
            ),
            (
                "[sources.attendance_logs]\ntable = \"t\"\n[sources.attendance_logs.update]\nsent = \"x\"\n",
                "sources.attendance_logs.update.sent: not something rappel records (expected one of sync_status, synced,",
            ),
            (
                "[sources.scheduled_reports]\ntable = \"t\"\n[sources.scheduled_reports.columns]\nrecurrence = \"r\"\n",
                "does not recur",
            ),
            (
                "[sources.scheduled_reports]\ntable = \"t\"\n[sources.scheduled_reports.update]\nsent_on = \"x\"\n",
                "sources.scheduled_reports.update.sent_on: not something rappel records",
            ),
            (
                "[sources.tickets]\ntable = \"t\"\n[sources.tickets.update]\nsent = \"x\"\n",
                "rappel writes nothing about the rows of tickets",
            ),
            (
                "[sources.manual_reminders]\nquery = \"select 1\"\n[sources.manual_reminders.update]\nsent = \"x\"\n",
                "only with `table`",
            ),
            ("[sources.tickets]\n", "expected `table"),
            ("[sources.tickets]\ntable = \"t\"\nquery = \"select 1\"\n", "not both"),
            ("[sources.tickets]\ntable = \" \"\n", "sources.tickets.table: empty"),
            (
                "[sources.tickets]\ntable = \"t\"\n[sources.tickets.columns]\nnumero = \"x\"\n",
                "sources.tickets.columns.numero: not a column of tickets",
            ),
            (
                "[sources.tickets]\nquery = \"select 1\"\n[sources.tickets.columns]\nreference = \"x\"\n",
                "only with `table`",
            ),
        ] {
            let e = parse(toml).unwrap_err();
            assert!(e.contains(says), "{toml}: {e}");
        }
    }
}
