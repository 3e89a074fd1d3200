//! `rappel dashboard [--out FILE] [--since 30d]`: what `stats` knows as one
//! self-contained HTML page for a manager's browser: no script, no external
//! font, stylesheet or image; charts inline as SVG (`crate::chart`); every
//! value HTML-escaped by minijinja's autoescape; in the configured locale and
//! zone. Cron refreshes it; any web server (or the host application) serves
//! the file, which is replaced whole, never seen half-written.

use std::collections::BTreeMap;

use chrono::{DateTime, Days, NaiveDate, Utc};
use chrono_tz::Tz;
use minijinja::{Environment, Value};
use serde::Serialize;

use crate::chart::{self, Day};
use crate::cli::{DashboardArgs, LogArgs, Since};
use crate::cmd::log;
use crate::config::Locale;
use crate::domain::Run;
use crate::exit::Exit;
use crate::instant;
use crate::runner::Ctx;
use crate::store::stats::{Counts, Figures, Group, Reason};

const TEMPLATE: &str = include_str!("dashboard.html");

/// Days shown one bar each up to this many; a longer period goes by week.
const MAX_DAYS: usize = 92;

pub fn run(ctx: &Ctx<'_>, args: &DashboardArgs) -> anyhow::Result<Exit> {
    let page = build(ctx, &args.since)?;
    match &args.out {
        Some(path) => {
            // Never over the database, the configuration or any file that
            // is not an HTML page.
            crate::files::replace_if(path, page.as_bytes(), |head| {
                let head = String::from_utf8_lossy(head).trim_start().to_ascii_lowercase();
                head.starts_with("<!doctype html") || head.starts_with("<html")
            })
            .map_err(|e| crate::exit::fail(Exit::IoErr, format!("cannot write {}: {e}", path.display())))?;
            ::log::info!("wrote {} ({} bytes)", path.display(), page.len());
        }
        None => crate::output::write_stdout(page.as_bytes())
            .map_err(|e| crate::exit::fail(Exit::IoErr, format!("cannot write to standard output: {e}")))?,
    }
    Ok(Exit::Ok)
}

/// The page's words in one locale.
#[derive(Serialize)]
struct Words {
    lang: &'static str,
    title: &'static str,
    since: &'static str,
    generated: &'static str,
    planned: &'static str,
    sent: &'static str,
    failed: &'static str,
    cancelled: &'static str,
    pending: &'static str,
    sending: &'static str,
    retrying: &'static str,
    success: &'static str,
    median: &'static str,
    versus_before: &'static str,
    per_day: &'static str,
    per_week: &'static str,
    success_per_day: &'static str,
    success_per_week: &'static str,
    /// One message's status, for its badge, in the order of `STATUSES`.
    one: [&'static str; 5],
    no_reason: &'static str,
    /// `store::stats::NOT_TEXT` in this locale (and `no_reason`, `NO_REASON`).
    not_text: &'static str,
    /// The decimal separator (`.` in English, `,` in French).
    decimal: char,
    by_channel: &'static str,
    by_kind: &'static str,
    total: &'static str,
    failures: &'static str,
    cancellations: &'static str,
    none: &'static str,
    runs: &'static str,
    job: &'static str,
    started: &'static str,
    took: &'static str,
    exit: &'static str,
    last_success: &'static str,
    unfinished: &'static str,
    never: &'static str,
    attendance: &'static str,
    service: &'static str,
    last_push: &'static str,
    last_pull: &'static str,
    last_deliveries: &'static str,
    when: &'static str,
    kind: &'static str,
    channel: &'static str,
    recipient: &'static str,
    status: &'static str,
    detail: &'static str,
    count: &'static str,
    reason: &'static str,
}

const EN: Words = Words {
    lang: "en",
    title: "Notifications",
    since: "since",
    generated: "Updated",
    planned: "planned",
    sent: "sent",
    failed: "failed",
    cancelled: "cancelled",
    pending: "pending",
    sending: "sending",
    retrying: "to retry",
    success: "Success rate",
    median: "Median time to send",
    versus_before: "vs the period before",
    per_day: "Messages per day",
    per_week: "Messages per week",
    success_per_day: "Success rate per day",
    success_per_week: "Success rate per week",
    one: ["sent", "failed", "cancelled", "pending", "sending"],
    no_reason: "no reason recorded",
    not_text: "(not text)",
    decimal: '.',
    by_channel: "By channel",
    by_kind: "By kind",
    total: "total",
    failures: "Failures by reason",
    cancellations: "Cancelled, by reason (not failures)",
    none: "None.",
    runs: "Last run of each job",
    job: "Job",
    started: "Started",
    took: "Took",
    exit: "Exit",
    last_success: "Last success",
    unfinished: "running, or killed",
    never: "never",
    attendance: "Attendance",
    service: "Service",
    last_push: "Last push",
    last_pull: "Last users pull",
    last_deliveries: "Last deliveries",
    when: "Planned",
    kind: "Kind",
    channel: "Channel",
    recipient: "Recipient",
    status: "Status",
    detail: "Detail",
    count: "Count",
    reason: "Reason",
};

const FR: Words = Words {
    lang: "fr",
    title: "Notifications",
    since: "depuis le",
    generated: "Mis à jour",
    planned: "prévus",
    sent: "envoyés",
    failed: "en échec",
    cancelled: "annulés",
    pending: "en attente",
    sending: "en cours",
    retrying: "à réessayer",
    success: "Taux de réussite",
    median: "Délai médian d'envoi",
    versus_before: "par rapport à la période précédente",
    per_day: "Messages par jour",
    per_week: "Messages par semaine",
    success_per_day: "Taux de réussite par jour",
    success_per_week: "Taux de réussite par semaine",
    one: ["envoyé", "en échec", "annulé", "en attente", "en cours"],
    no_reason: "aucun motif enregistré",
    not_text: "(pas du texte)",
    decimal: ',',
    by_channel: "Par canal",
    by_kind: "Par type",
    total: "total",
    failures: "Échecs par motif",
    cancellations: "Annulés, par motif (pas des échecs)",
    none: "Aucun.",
    runs: "Dernière exécution de chaque tâche",
    job: "Tâche",
    started: "Début",
    took: "Durée",
    exit: "Code",
    last_success: "Dernier succès",
    unfinished: "en cours, ou interrompue",
    never: "jamais",
    attendance: "Pointages",
    service: "Service",
    last_push: "Dernier envoi",
    last_pull: "Dernière lecture des employés",
    last_deliveries: "Derniers envois",
    when: "Prévu",
    kind: "Type",
    channel: "Canal",
    recipient: "Destinataire",
    status: "Statut",
    detail: "Détail",
    count: "Nombre",
    reason: "Motif",
};

impl Words {
    /// `text` (a number written by Rust) with this locale's decimal separator.
    fn decimal(&self, text: String) -> String {
        if self.decimal == '.' {
            text
        } else {
            text.replace('.', &self.decimal.to_string())
        }
    }
}

/// The statuses rappel writes, in the order of `Words::one`.
const STATUSES: [&str; 5] = ["sent", "failed", "cancelled", "pending", "sending"];

fn words(locale: Locale) -> &'static Words {
    match locale {
        Locale::Fr => &FR,
        Locale::En => &EN,
    }
}

/// A group (channel or kind) with its shares of the widest group, for bars.
#[derive(Serialize)]
struct Bar<'a> {
    name: std::borrow::Cow<'a, str>,
    counts: &'a Counts,
    /// Percent of the widest group's total, per status.
    sent: f64,
    failed: f64,
    cancelled: f64,
    open: f64,
}

fn bars(groups: &[Group]) -> Vec<Bar<'_>> {
    let widest = groups.iter().map(|g| g.counts.total).max().unwrap_or(0).max(1) as f64;
    let share = |n: i64| (1000.0 * n as f64 / widest).round() / 10.0;
    groups
        .iter()
        .map(|g| Bar {
            name: crate::output::printable(&g.name),
            counts: &g.counts,
            sent: share(g.counts.sent),
            failed: share(g.counts.failed),
            cancelled: share(g.counts.cancelled),
            open: share(g.counts.open),
        })
        .collect()
}

#[derive(Serialize)]
struct RunRow {
    job: String,
    started: String,
    took: Option<String>,
    /// Whether it recorded its end (its exit code may still not read).
    finished: bool,
    exit_code: Option<i64>,
    ok: bool,
    error: Option<String>,
    last_success: Option<String>,
}

#[derive(Serialize, Default)]
struct ServiceRow {
    service: String,
    pending: i64,
    retrying: i64,
    failed: i64,
    sent: i64,
    last_push: Option<String>,
    last_pull: Option<String>,
}

#[derive(Serialize)]
struct Delivery {
    id: i64,
    at: String,
    kind: String,
    channel: String,
    recipient: String,
    status: String,
    /// The status as stored when it is one rappel writes (the badge's colour).
    status_class: &'static str,
    detail: String,
}

/// The page, rendered. Errors: the database's (`StoreError`), a chart or
/// the template failing (internal errors).
pub fn build(ctx: &Ctx<'_>, since: &Since) -> anyhow::Result<String> {
    let zone = ctx.config.timezone;
    let now = ctx.clock.now();
    let from = since.resolve(now, zone);
    let conn = ctx.config.db(true).connect_current()?;
    let figures = crate::store::stats::gather(&conn, from)?;
    let before = crate::store::stats::totals_between(&conn, from - (now - from), from)?;
    let minutes = crate::store::stats::finished_by_minute(&conn, from)?;
    let runs = crate::store::runs::latest(&conn, &Run::PINGED)?;
    let punches = crate::store::stats::punches_by_terminal(&conn)?;
    let (terminals, _) = crate::jobs::attendance::terminals(&conn, &ctx.config.attendance.services)?;
    // A row written by hand that cannot be read (a blob for an error) is
    // said in its section; the rest of the page is still built.
    let (last, unreadable) = match log::query(
        ctx,
        &LogArgs {
            status: None,
            kind: None,
            channel: None,
            since: Some(Since::At(from)),
            limit: 50,
        },
    ) {
        Ok(last) => (last, None),
        Err(e) => {
            ::log::warn!("the last deliveries cannot be read: {e:#}");
            (
                Vec::new(),
                Some(crate::output::printable(&format!("{e:#}")).into_owned()),
            )
        }
    };
    let w = words(ctx.config.locale);
    let local = |at: &str| {
        instant::parse(at).map_or_else(
            || at.to_string(),
            |t| t.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string(),
        )
    };

    let (days, weekly) = days_of(&minutes, from, now, zone);
    let outcomes_svg = chart::daily_outcomes(&days, if weekly { w.per_week } else { w.per_day })
        .map_err(|e| anyhow::anyhow!("the chart of messages per day: {e}"))?;
    let rate_svg = chart::success_rate(&days, if weekly { w.success_per_week } else { w.success_per_day })
        .map_err(|e| anyhow::anyhow!("the chart of the success rate: {e}"))?;
    let rate_before = before.failure_rate().map(|f| 100.0 - f);
    let trend = figures.success_rate.zip(rate_before).map(|(now, then)| now - then);

    let runs: Vec<RunRow> = runs
        .iter()
        .map(|r| RunRow {
            job: r.job.clone(),
            started: local(&r.started_at),
            took: r.duration().map(|d| took(w, d.num_seconds())),
            finished: r.finished_at.is_some(),
            exit_code: r.exit(),
            ok: r.exit() == Some(0),
            error: r.error.as_deref().map(|e| crate::output::printable(e).into_owned()),
            last_success: r.last_success.as_deref().map(local),
        })
        .collect();

    let services = services(ctx, &terminals, &figures, &punches, &local);
    let last: Vec<Delivery> = last
        .iter()
        .map(|e| Delivery {
            id: e.id,
            at: local(&e.created_at),
            kind: crate::output::printable(&e.kind).into_owned(),
            channel: crate::output::printable(&e.channel).into_owned(),
            recipient: crate::output::printable(&e.recipient).into_owned(),
            status: status_word(w, &e.status),
            status_class: STATUSES.iter().find(|s| **s == e.status).copied().unwrap_or("other"),
            detail: e
                .last_error
                .as_deref()
                .or(e.provider_status.as_deref())
                .map(|d| crate::output::printable(d).chars().take(120).collect())
                .unwrap_or_default(),
        })
        .collect();

    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_template("dashboard.html", TEMPLATE)?;
    // The store's words for a NULL error and for one that is not text.
    let reasons = |r: &[Reason]| {
        r.iter()
            .map(|r| {
                let reason = match r.reason.as_str() {
                    crate::store::stats::NO_REASON => w.no_reason,
                    crate::store::stats::NOT_TEXT => w.not_text,
                    other => other,
                };
                (crate::output::printable(reason).into_owned(), r.count)
            })
            .collect::<Vec<_>>()
    };
    let page = env.get_template("dashboard.html")?.render(minijinja::context! {
        w => ser(&w),
        generated => ser(&local(&instant::format(now))),
        since => ser(&local(&figures.since)),
        zone => ser(&zone.name()),
        totals => ser(&&figures.totals),
        success => ser(&figures.success_rate.map(|r| w.decimal(format!("{r:.1} %")))),
        trend => ser(&trend.map(|d| w.decimal(format!("{}{d:.1}", if d >= 0.0 { "+" } else { "" })))),
        trend_up => ser(&trend.is_some_and(|d| d >= 0.0)),
        median => ser(&figures.median_seconds_to_send.map(|s| w.decimal(crate::cmd::stats::human_seconds(s)))),
        outcomes_chart => Value::from_safe_string(outcomes_svg),
        rate_chart => Value::from_safe_string(rate_svg),
        weekly => ser(&weekly),
        colors => ser(&BTreeMap::from([("sent", chart::SENT), ("failed", chart::FAILED), ("cancelled", chart::CANCELLED)])),
        by_channel => ser(&bars(&figures.by_channel)),
        by_kind => ser(&bars(&figures.by_kind)),
        failures => ser(&reasons(&figures.failures_by_reason)),
        cancellations => ser(&reasons(&figures.cancellations_by_reason)),
        runs => ser(&runs),
        attendance => ser(&&figures.attendance),
        services => ser(&services),
        last => ser(&last),
        unreadable => ser(&unreadable),
    })?;
    Ok(page)
}

/// `value` as the template reads it (through serde).
fn ser<T: Serialize>(value: &T) -> Value {
    Value::from(minijinja::value::Serde(value))
}

/// One message's status in the page's words; as stored when rappel does
/// not write it.
fn status_word(w: &Words, status: &str) -> String {
    match STATUSES.iter().position(|s| *s == status) {
        Some(i) => w.one[i].to_string(),
        None => crate::output::printable(status).into_owned(),
    }
}

/// A run's duration, known to the second (`rappel_job_runs` keeps whole
/// seconds): `< 1 s`, `12 s`, `3 min`, `1,5 h` in French.
fn took(w: &Words, seconds: i64) -> String {
    match seconds.max(0) {
        0 => "< 1 s".to_string(),
        s if s < 90 => format!("{s} s"),
        s if s < 5_400 => format!("{:.0} min", s as f64 / 60.0),
        s => w.decimal(format!("{:.1} h", s as f64 / 3_600.0)),
    }
}

/// The local days from `from` to `now` in `zone`, each with its finished
/// messages (`minutes` as `finished_by_minute` gives them), or weeks
/// (starting on Monday) when there are more than `MAX_DAYS` days; the bool
/// says weeks.
fn days_of(minutes: &[(String, String, i64)], from: DateTime<Utc>, now: DateTime<Utc>, zone: Tz) -> (Vec<Day>, bool) {
    let first = from.with_timezone(&zone).date_naive();
    let last = now.with_timezone(&zone).date_naive().max(first);
    let span = usize::try_from((last - first).num_days()).unwrap_or(0) + 1;
    let weekly = span > MAX_DAYS;
    let bucket = |d: NaiveDate| -> NaiveDate {
        if weekly {
            d - Days::new(u64::from(chrono::Datelike::weekday(&d).num_days_from_monday()))
        } else {
            d
        }
    };
    let mut buckets: BTreeMap<NaiveDate, Day> = BTreeMap::new();
    let mut d = bucket(first);
    while d <= last {
        buckets.insert(
            d,
            Day {
                label: d.format("%m-%d").to_string(),
                ..Day::default()
            },
        );
        d = d + Days::new(if weekly { 7 } else { 1 });
    }
    for (minute, status, n) in minutes {
        let Some(at) = instant::parse(&format!("{minute}:00Z")) else {
            continue;
        };
        let Some(day) = buckets.get_mut(&bucket(at.with_timezone(&zone).date_naive())) else {
            continue;
        };
        let n = u64::try_from(*n).unwrap_or(0);
        match status.as_str() {
            "sent" => day.sent += n,
            "failed" => day.failed += n,
            "cancelled" => day.cancelled += n,
            _ => {}
        }
    }
    (buckets.into_values().collect(), weekly)
}

/// The attendance ledger per configured service: its terminals' punches
/// (`terminals`, as `jobs::attendance::terminals` gives them in the order
/// of the services), and its last push and pull.
fn services(
    ctx: &Ctx<'_>,
    terminals: &[Vec<crate::store::attendance::Terminal>],
    figures: &Figures,
    punches: &[(i64, String, i64)],
    local: &dyn Fn(&str) -> String,
) -> Vec<ServiceRow> {
    let mut rows: Vec<ServiceRow> = ctx
        .config
        .attendance
        .services
        .iter()
        .zip(terminals)
        .map(|(s, mine)| {
            let mut row = ServiceRow {
                service: s.name.clone(),
                ..ServiceRow::default()
            };
            for (terminal, status, n) in punches {
                if !mine.iter().any(|t| t.id == *terminal) {
                    continue;
                }
                match status.as_str() {
                    "pending" | "sending" => row.pending += n,
                    "retrying" => row.retrying += n,
                    "failed" => row.failed += n,
                    "sent" => row.sent += n,
                    _ => {}
                }
            }
            row
        })
        .collect();
    for s in &figures.attendance.services {
        let row = match rows.iter_mut().find(|r| r.service == s.service) {
            Some(row) => row,
            None => {
                rows.push(ServiceRow {
                    service: s.service.clone(),
                    ..ServiceRow::default()
                });
                let Some(row) = rows.last_mut() else { continue };
                row
            }
        };
        row.last_push = s.last_attendance_sync.as_deref().map(local);
        row.last_pull = s.last_users_sync.as_deref().map(local);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        instant::parse(s).unwrap()
    }

    #[test]
    fn minutes_fall_in_the_local_day_of_the_zone() {
        // 23:30 UTC on the 27th is the 28th in Paris (UTC+1) but the 27th
        // in New York (UTC-5); in Kathmandu (UTC+5:45) the day turns at 18:15 UTC.
        let minutes = vec![
            ("2026-11-27T23:30".to_string(), "sent".to_string(), 2),
            ("2026-11-27T10:00".to_string(), "failed".to_string(), 1),
            ("2026-11-27T10:00".to_string(), "weird".to_string(), 9),
        ];
        let (paris, weekly) = days_of(
            &minutes,
            at("2026-11-26T12:00:00Z"),
            at("2026-11-29T12:00:00Z"),
            chrono_tz::Europe::Paris,
        );
        assert!(!weekly);
        let labels: Vec<&str> = paris.iter().map(|d| d.label.as_str()).collect();
        assert_eq!(labels, ["11-26", "11-27", "11-28", "11-29"]);
        assert_eq!((paris[1].sent, paris[1].failed, paris[2].sent), (0, 1, 2));
        let (ny, _) = days_of(
            &minutes,
            at("2026-11-26T12:00:00Z"),
            at("2026-11-29T12:00:00Z"),
            chrono_tz::America::New_York,
        );
        assert_eq!((ny[1].sent, ny[1].failed), (2, 1));
        let late = vec![
            ("2026-11-27T18:14".to_string(), "sent".to_string(), 1),
            ("2026-11-27T18:15".to_string(), "sent".to_string(), 1),
        ];
        let (ktm, _) = days_of(
            &late,
            at("2026-11-26T12:00:00Z"),
            at("2026-11-29T12:00:00Z"),
            chrono_tz::Asia::Kathmandu,
        );
        let counts: Vec<u64> = ktm.iter().map(|d| d.sent).collect();
        assert_eq!(
            counts,
            [0, 1, 1, 0],
            "18:14 UTC is 23:59 on the 27th there, 18:15 is midnight on the 28th"
        );
    }

    #[test]
    fn a_long_period_goes_by_week_from_monday() {
        let minutes = vec![("2026-11-25T10:00".to_string(), "sent".to_string(), 3)];
        let (weeks, weekly) = days_of(
            &minutes,
            at("2026-06-01T12:00:00Z"),
            at("2026-11-29T12:00:00Z"),
            chrono_tz::UTC,
        );
        assert!(weekly);
        assert_eq!(weeks.first().map(|d| d.label.as_str()), Some("06-01"), "a Monday");
        assert_eq!(weeks.last().map(|d| (d.label.as_str(), d.sent)), Some(("11-23", 3)));
        assert_eq!(weeks.len(), 26);
    }

    #[test]
    fn durations_read_shortly() {
        assert_eq!(took(&EN, 0), "< 1 s");
        assert_eq!(took(&EN, 12), "12 s");
        assert_eq!(took(&EN, 180), "3 min");
        assert_eq!(took(&EN, 9_000), "2.5 h");
        assert_eq!(took(&FR, 9_000), "2,5 h");
        assert_eq!(took(&EN, -5), "< 1 s");
    }
}
