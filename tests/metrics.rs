//! Prometheus metrics end to end: `rappel metrics` read back by a strict
//! parser of the text exposition format (openmetrics-parser), its values
//! against what the database holds, Prometheus' naming conventions, and
//! `[monitoring] textfile_dir` written after each run, atomically, for
//! node_exporter's textfile collector.

use crate::support;

use openmetrics_parser::{MetricNumber, PrometheusType, PrometheusValue};
use support::{SmtpServer, TestEnv};

const NOW: &str = "2026-03-10T07:00:00Z";

/// Deliveries of every final status, two waiting, one hostile kind, runs
/// that finished well, badly and not at all, and punches.
fn history(env: &TestEnv) {
    env.db()
        .execute_batch(
            r#"INSERT INTO rappel_deliveries (job, kind, dedupe_key, channel, recipient, status, last_error, created_at, sent_at) VALUES
               ('j', 'loan_d1', 'a', 'email', 'a@x', 'sent', NULL, '2026-03-09T07:00:00Z', '2026-03-09T07:01:00Z'),
               ('j', 'loan_d1', 'b', 'email', 'b@x', 'sent', NULL, '2026-03-09T07:00:00Z', '2026-03-09T07:02:00Z'),
               ('j', 'loan_d1', 'c', 'sms', '+24107000001', 'failed', 'refused', '2026-03-09T07:00:00Z', NULL),
               ('j', 'delay_alert', 'd', 'email', 'd@x', 'cancelled', 'ticket closed', '2026-03-09T07:00:00Z', NULL),
               ('j', 'we"ird\kind
next', 'e', 'whatsapp', '+24107000002', 'sent', NULL, '2026-03-09T07:00:00Z', '2026-03-09T07:00:05Z'),
               ('j', 'loan_d1', 'f', 'sms', '+24107000003', 'pending', NULL, '2026-03-10T06:00:00Z', NULL),
               ('j', 'loan_d1', 'g', 'email', 'g@x', 'sending', NULL, '2026-03-10T05:30:00Z', NULL);
             -- Held by quiet hours since 01:00 until 08:00: waiting, not due.
             INSERT INTO rappel_deliveries (job, kind, dedupe_key, channel, recipient, status, created_at, next_attempt_at)
               VALUES ('j', 'loan_d1', 'held', 'sms', '+24107000004', 'pending', '2026-03-10T01:00:00Z', '2026-03-10T08:00:00Z');
             INSERT INTO rappel_job_runs (job, started_at, finished_at, exit_code, sent, failed) VALUES
               ('check-delay-alerts', '2026-03-10T05:00:00Z', '2026-03-10T05:00:02Z', 0, 1, 0),
               ('check-delay-alerts', '2026-03-10T06:00:00Z', '2026-03-10T06:00:03Z', 75, 0, 1),
               ('send-reminders', '2026-03-10T06:30:00Z', NULL, NULL, 0, 0);
             INSERT INTO terminals (id, serial) VALUES (1, 'TM20-001');
             INSERT INTO attendance_logs (terminal_id, enroll_id, punched_at, sync_status, next_attempt_at) VALUES
               (1, 1, '2026-03-09T07:00:00Z', 'pending', NULL), (1, 2, '2026-03-09T07:01:00Z', 'failed', '2026-03-10T08:00:00Z'),
               (1, 3, '2026-03-09T07:02:00Z', 'sent', NULL);
             INSERT INTO rappel_terminal_sync_state (terminal_id, service, last_attendance_sync, last_users_sync)
               VALUES (1, 'rh', '2026-03-10T06:45:00Z', NULL);"#,
        )
        .unwrap();
}

type Exposition = openmetrics_parser::MetricsExposition<PrometheusType, PrometheusValue>;

/// Parses `text` strictly and checks Prometheus' naming conventions: every
/// family documented and typed, `rappel_` names, `_total` on counters and
/// only on them, base units.
fn parsed(text: &str) -> Exposition {
    let exposition = openmetrics_parser::prometheus::parse_prometheus(text)
        .unwrap_or_else(|e| panic!("not the text exposition format: {e:?}\n{text}"));
    for (name, family) in &exposition.families {
        assert!(name.starts_with("rappel_"), "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{name}"
        );
        assert!(!family.help.is_empty(), "{name} has no HELP");
        assert!(
            (family.family_type == PrometheusType::Counter) == name.ends_with("_total"),
            "{name}: counters, and only counters, end in _total"
        );
        assert!(
            !name.contains("milliseconds") && !name.contains("minutes"),
            "{name}: base units"
        );
        assert!(text.contains(&format!("# TYPE {name} ")), "{name} has no TYPE line");
    }
    exposition
}

/// The value of `family`'s sample whose labels are `labels`, if any.
fn value(exposition: &Exposition, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let family = exposition.families.get(family)?;
    family
        .iter_samples()
        .find(|s| {
            let set = s.get_labelset().unwrap();
            labels.iter().all(|(k, v)| set.get_label_value(k) == Some(*v)) && set.iter().count() == labels.len()
        })
        .map(|s| match &s.value {
            PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n) => number(n),
            PrometheusValue::Counter(c) => number(&c.value),
            other => panic!("unexpected {other:?}"),
        })
}

fn number(n: &MetricNumber) -> f64 {
    n.as_f64()
}

fn epoch(at: &str) -> f64 {
    chrono::DateTime::parse_from_rfc3339(at).unwrap().timestamp() as f64
}

#[test]
fn metrics_count_what_the_database_holds_in_the_text_format() {
    let env = TestEnv::builder().build();
    history(&env);
    let out = env.run(&["metrics"], NOW).success();
    let m = parsed(&out.stdout);
    // Without a folder, --textfile needs [monitoring] textfile_dir.
    let refused = env.run(&["metrics", "--textfile"], NOW).code(64);
    assert!(refused.stderr.contains("textfile_dir"), "{}", refused.stderr);
    let total = "rappel_deliveries_total";
    assert_eq!(
        value(
            &m,
            total,
            &[("status", "sent"), ("channel", "email"), ("kind", "loan_d1")]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &m,
            total,
            &[("status", "failed"), ("channel", "sms"), ("kind", "loan_d1")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            total,
            &[("status", "cancelled"), ("channel", "email"), ("kind", "delay_alert")]
        ),
        Some(1.0)
    );
    // A kind with a quote, a backslash and a line feed: the line feed shown
    // as `\n` (as everything rappel prints), then escaped as the format asks;
    // the parser above read the line.
    assert!(
        out.stdout
            .contains(r#"rappel_deliveries_total{status="sent",channel="whatsapp",kind="we\"ird\\kind\\nnext"} 1"#),
        "{}",
        out.stdout
    );
    assert_eq!(value(&m, "rappel_deliveries_pending", &[("channel", "sms")]), Some(2.0));
    assert_eq!(
        value(&m, "rappel_deliveries_pending", &[("channel", "email")]),
        Some(1.0)
    );
    assert_eq!(
        value(&m, "rappel_deliveries_pending", &[("channel", "whatsapp")]),
        Some(0.0)
    );
    assert_eq!(
        value(&m, "rappel_deliveries_oldest_pending_age_seconds", &[]),
        Some(5400.0),
        "planned at 05:30, now 07:00; the one held since 01:00 is not due"
    );
    let job = [("job", "check-delay-alerts")];
    assert_eq!(value(&m, "rappel_job_last_run_exit_code", &job), Some(75.0));
    assert_eq!(value(&m, "rappel_job_last_run_duration_seconds", &job), Some(3.0));
    assert_eq!(
        value(&m, "rappel_job_last_run_timestamp_seconds", &job),
        Some(epoch("2026-03-10T06:00:00Z"))
    );
    assert_eq!(
        value(&m, "rappel_job_last_success_timestamp_seconds", &job),
        Some(epoch("2026-03-10T05:00:00Z"))
    );
    assert_eq!(value(&m, "rappel_job_last_run_finished", &job), Some(1.0));
    // A run that never recorded its end: unfinished, no exit code.
    let reminders = [("job", "send-reminders")];
    assert_eq!(value(&m, "rappel_job_last_run_finished", &reminders), Some(0.0));
    assert_eq!(value(&m, "rappel_job_last_run_exit_code", &reminders), None);
    // Jobs that never ran have no samples.
    assert_eq!(
        value(&m, "rappel_job_last_run_finished", &[("job", "send-reports")]),
        None
    );
    assert_eq!(
        value(&m, "rappel_attendance_punches", &[("status", "retrying")]),
        Some(1.0)
    );
    assert_eq!(value(&m, "rappel_attendance_backlog", &[]), Some(2.0));
    assert_eq!(
        value(
            &m,
            "rappel_attendance_last_push_timestamp_seconds",
            &[("service", "rh")]
        ),
        Some(epoch("2026-03-10T06:45:00Z"))
    );
}

#[test]
fn each_run_writes_the_textfile_atomically_and_a_dry_run_does_not() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "\n[monitoring]\ntextfile_dir = \"prom\"\n");
    let dir = env.dir.path().join("prom");
    std::fs::create_dir(&dir).unwrap();
    let file = dir.join("rappel.prom");
    env.run(&["check-delay-alerts"], NOW).success();
    let text = std::fs::read_to_string(&file).unwrap();
    let m = parsed(&text);
    assert_eq!(
        value(&m, "rappel_job_last_run_exit_code", &[("job", "check-delay-alerts")]),
        Some(0.0)
    );
    // Only rappel.prom is left in the folder: the collector reads *.prom.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["rappel.prom"]);

    std::fs::remove_file(&file).unwrap();
    env.run(&["check-delay-alerts", "--dry-run"], NOW).success();
    assert!(!file.exists(), "a dry run records no run, so writes no metrics");

    env.run(&["send-reminders"], "2026-03-10T07:05:00Z").success();
    let m = parsed(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(
        value(
            &m,
            "rappel_job_last_run_timestamp_seconds",
            &[("job", "send-reminders")]
        ),
        Some(epoch("2026-03-10T07:05:00Z"))
    );
    assert_eq!(
        value(
            &m,
            "rappel_job_last_run_timestamp_seconds",
            &[("job", "check-delay-alerts")]
        ),
        Some(epoch(NOW)),
        "every job's last run, not only the one that wrote the file"
    );
}

#[test]
fn a_textfile_dir_that_cannot_be_written_is_an_error_that_leaves_the_job_alone() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "\n[monitoring]\ntextfile_dir = \"missing\"\n");
    let out = env.run(&["check-delay-alerts"], NOW).success();
    assert!(
        out.stderr.contains("monitoring.textfile_dir") && out.stderr.contains("missing/rappel.prom"),
        "{}",
        out.stderr
    );
    // `config check` says so before any run.
    let out = env.run(&["config", "check"], NOW).code(78);
    assert!(
        out.stderr.contains("monitoring.textfile_dir") && out.stderr.contains("is not a folder"),
        "{}",
        out.stderr
    );
    // `metrics --textfile` writes there, and fails with the I/O exit code;
    // plain `metrics` prints.
    let out = env.run(&["metrics", "--textfile"], NOW).code(74);
    assert!(out.stderr.contains("missing/rappel.prom"), "{}", out.stderr);
    let out = env.run(&["metrics"], NOW).success();
    parsed(&out.stdout);
    // --textfile DIR overrides the configured folder; nothing goes to stdout.
    let here = env.dir.path().join("here");
    std::fs::create_dir(&here).unwrap();
    let out = env
        .run(&["metrics", "--textfile", here.to_str().unwrap()], NOW)
        .success();
    assert_eq!(out.stdout, "");
    parsed(&std::fs::read_to_string(here.join("rappel.prom")).unwrap());
}

#[test]
fn an_empty_textfile_dir_is_a_configuration_error() {
    let env = TestEnv::builder().build();
    let mut config = std::fs::read_to_string(env.config_path()).unwrap();
    config.push_str("\n[monitoring]\ntextfile_dir = \" \"\n");
    env.write_config(&config);
    let out = env.run(&["metrics"], NOW).code(78);
    assert!(out.stderr.contains("monitoring.textfile_dir"), "{}", out.stderr);
}
