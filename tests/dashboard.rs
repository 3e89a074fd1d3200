//! `rappel dashboard` end to end: one self-contained page (no script, no
//! external resource), every value escaped, its charts' bars as the
//! database counts them, per day in the configured zone, in the configured
//! locale, and written whole.

use crate::support;

use support::TestEnv;

const NOW: &str = "2026-03-10T07:00:00Z";

fn env_with(extra: &str) -> TestEnv {
    let env = TestEnv::builder()
        .config(&format!(
            r#"
[attendance.services.rh]
base_url = "http://127.0.0.1:9"
users_endpoint = "/users"
attendance_endpoint = "/punches"
auth = "none"
timeout_s = 2
terminals = ["TM20-001"]
[attendance.services.paie]
base_url = "http://127.0.0.1:9"
attendance_endpoint = "/punches"
auth = "none"
timeout_s = 2
{extra}"#
        ))
        .build();
    env.db()
        .execute_batch(
            r#"INSERT INTO rappel_deliveries (job, kind, dedupe_key, channel, recipient, status, last_error, created_at, sent_at) VALUES
               ('j', 'loan_d1', 'a', 'email', 'a@x', 'sent', NULL, '2026-03-08T09:00:00Z', '2026-03-08T09:01:00Z'),
               ('j', 'loan_d1', 'b', 'email', 'b@x', 'sent', NULL, '2026-03-09T09:00:00Z', '2026-03-09T09:02:00Z'),
               ('j', 'loan_d1', 'c', 'sms', '+24107000001', 'failed', '<img src=x onerror=alert(1)>', '2026-03-09T09:00:00Z', NULL),
               ('j', '<script>alert("kind")</script>', 'd', 'email', 'd@x', 'sent', NULL, '2026-03-09T09:00:00Z', '2026-03-09T09:00:30Z'),
               ('j', 'delay_alert', 'e', 'email', 'e@x', 'cancelled', 'ticket closed', '2026-03-09T23:30:00Z', NULL),
               ('j', 'loan_d1', 'f', 'sms', '+24107000003', 'pending', NULL, '2026-03-10T06:00:00Z', NULL),
               ('j', 'loan_d1', 'old', 'email', 'old@x', 'failed', 'long ago', '2026-01-01T07:00:00Z', NULL);
             INSERT INTO rappel_job_runs (job, started_at, finished_at, exit_code, error) VALUES
               ('check-delay-alerts', '2026-03-10T06:00:00Z', '2026-03-10T06:00:03Z', 75, 'smtp: 451 <try later>'),
               ('send-reminders', '2026-03-10T06:30:00Z', NULL, NULL, NULL),
               ('send-reports', '2026-03-10T06:40:00Z', '2026-03-10T06:40:01Z', 0, NULL);
             INSERT INTO terminals (id, serial) VALUES (1, 'TM20-001'), (2, 'TM20-002');
             INSERT INTO attendance_logs (terminal_id, enroll_id, punched_at, sync_status, next_attempt_at) VALUES
               (1, 1, '2026-03-09T07:00:00Z', 'pending', NULL), (1, 2, '2026-03-09T07:01:00Z', 'failed', '2026-03-10T08:00:00Z'),
               (1, 3, '2026-03-09T07:02:00Z', 'sent', NULL), (2, 4, '2026-03-09T07:03:00Z', 'pending', NULL),
               (2, 5, '2026-03-09T07:04:00Z', 'pending', NULL);
             INSERT INTO rappel_terminal_sync_state (terminal_id, service, last_attendance_sync, last_users_sync)
               VALUES (1, 'rh', '2026-03-10T06:45:00Z', NULL);"#,
        )
        .unwrap();
    env
}

/// The page written by `dashboard --out page.html ARGS`.
fn page(env: &TestEnv, args: &[&str]) -> String {
    let out = env.dir.path().join("page.html");
    let mut all = vec!["dashboard", "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    env.run(&all, NOW).success();
    std::fs::read_to_string(out).unwrap()
}

/// Every tag of the page, `<` to `>`: text is escaped, so a `<` opens a tag.
fn tags(html: &str) -> Vec<&str> {
    html.match_indices('<')
        .map(|(i, _)| &html[i..i + html[i..].find('>').map_or(html.len() - i, |e| e + 1)])
        .collect()
}

/// The page's `<svg>` elements, parsed.
fn charts(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<svg") {
        let end = rest[start..].find("</svg>").expect("a closed svg") + start + "</svg>".len();
        out.push(rest[start..end].to_string());
        rest = &rest[end..];
    }
    out
}

/// The heights of the bars of colour `fill` in `svg`, left to right.
fn bars(svg: &str, fill: &str) -> Vec<f64> {
    let doc = roxmltree::Document::parse(svg).unwrap();
    let mut rects: Vec<(f64, f64)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("rect") && n.attribute("fill").is_some_and(|f| f.eq_ignore_ascii_case(fill)))
        .map(|n| {
            let num = |a| n.attribute(a).unwrap().parse::<f64>().unwrap();
            (num("x"), num("height"))
        })
        .collect();
    rects.sort_by(|a, b| a.0.total_cmp(&b.0));
    rects.into_iter().map(|(_, h)| h).collect()
}

#[test]
fn the_page_stands_alone_and_escapes_every_value() {
    let env = env_with("");
    let html = page(&env, &["--since", "7d"]);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.len() < 1_000_000);
    // Nothing fetched from elsewhere, nothing run.
    for tag in tags(&html) {
        let tag = tag.to_lowercase();
        for forbidden in [
            "<script", "<link", "<iframe", "<img", "<object", "<embed", " src=", " href=", "url(",
        ] {
            assert!(!tag.contains(forbidden), "{tag}");
        }
    }
    assert!(!html.contains("@import"));
    // Every value from the database escaped, in the tables and in the charts.
    assert!(
        html.contains("&lt;script&gt;alert(&quot;kind&quot;)&lt;&#x2f;script&gt;")
            || html.contains("&lt;script&gt;alert("),
        "{html}"
    );
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(html.contains("smtp: 451 &lt;try later&gt;"));
    // Readable on a phone: it scales to the screen, the charts with it.
    assert!(html.contains(r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#));
    for svg in charts(&html) {
        let doc = roxmltree::Document::parse(&svg).unwrap();
        assert!(doc.root_element().attribute("width").is_none() && doc.root_element().attribute("viewBox").is_some());
    }
    // No temporary file left beside it.
    let left: Vec<String> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("page.html"))
        .collect();
    assert_eq!(left, ["page.html"]);
}

#[test]
fn the_figures_and_the_bars_are_the_databases_per_local_day() {
    let env = env_with("");
    let html = page(&env, &["--since", "2026-03-08"]);
    // Totals since the 8th (the January failure is outside).
    for (n, word) in [
        (6, "planned"),
        (3, "sent"),
        (1, "failed"),
        (1, "cancelled"),
        (1, "pending"),
    ] {
        assert!(html.contains(&format!("<b>{n}</b><span>{word}</span>")), "{n} {word}");
    }
    assert!(
        html.contains("<b>75.0 %</b><span>Success rate</span>"),
        "3 sent of 4 finished"
    );
    let charts = charts(&html);
    assert_eq!(charts.len(), 2, "messages per day, success rate per day");
    // Paris: the 8th, 9th and 10th. 23:30 UTC on the 9th is the 10th there.
    let sent = bars(&charts[0], "#2e7d32");
    assert_eq!(sent.len(), 2, "sent on the 8th (1) and the 9th (2)");
    assert!((sent[1] / sent[0] - 2.0).abs() < 0.1, "{sent:?}");
    assert_eq!(bars(&charts[0], "#c62828").len(), 1);
    assert_eq!(
        bars(&charts[0], "#9e9e9e").len(),
        1,
        "the cancelled digest, on the 10th: {}",
        charts[0]
    );
    let labels: Vec<String> = roxmltree::Document::parse(&charts[0])
        .unwrap()
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(|t| t.trim().to_string()))
        .collect();
    assert!(labels.contains(&"03-10".to_string()), "{labels:?}");
    // Runs: the failed one with its code, the unfinished one said so.
    assert!(html.contains(r#"<span class="badge bad">75</span>"#));
    assert!(html.contains(r#"<span class="badge ok">0</span>"#));
    assert!(html.contains("running, or killed"));
    // Attendance per service: rh has TM20-001, paie every other terminal.
    assert!(html.contains("<tr><td>rh</td><td class=\"n\">1</td><td class=\"n\">1</td><td class=\"n\">0</td><td class=\"n\">1</td><td>2026-03-10 07:45</td>"), "{html}");
    assert!(html.contains("<tr><td>paie</td><td class=\"n\">2</td><td class=\"n\">0</td><td class=\"n\">0</td><td class=\"n\">0</td><td>never</td>"), "{html}");
}

#[test]
fn the_last_fifty_deliveries_and_a_trend_against_the_period_before() {
    let env = env_with("");
    let db = env.db();
    for i in 0..100 {
        // The week before: 1 failure in 4; this week's 60 more all sent.
        let (status, day) = match i {
            0..10 => ("failed", "2026-03-01"),
            10..40 => ("sent", "2026-03-01"),
            _ => ("sent", "2026-03-09"),
        };
        db.execute(
            "INSERT INTO rappel_deliveries (job, kind, dedupe_key, channel, recipient, status, created_at, sent_at)
             VALUES ('j', 'weekly', ?1, 'email', 'w@x', ?2, ?3, ?3)",
            rusqlite::params![format!("w{i}"), status, format!("{day}T10:00:00Z")],
        )
        .unwrap();
    }
    let html = page(&env, &["--since", "7d"]);
    let last = &html[html.find(r#"<section id="last">"#).unwrap()..];
    let rows = last.matches("<tr class=\"delivery\">").count();
    assert_eq!(rows, 50, "the last 50 of this week's 66 deliveries");
    // This week: 63 sent of 64 finished (98.4 %); the week before 30 of 40 (75 %).
    assert!(html.contains("<b>98.4 %</b>"), "{html}");
    assert!(html.contains("▲ +23.4 pts"), "{html}");
}

#[test]
fn the_page_speaks_the_configured_locale() {
    let env = env_with("");
    let mut config = std::fs::read_to_string(env.config_path()).unwrap();
    config = config.replace("locale = \"en\"", "locale = \"fr\"");
    env.write_config(&config);
    let html = page(&env, &[]);
    assert!(html.contains(r#"<html lang="fr">"#));
    assert!(html.contains("Taux de réussite") && html.contains("Derniers envois") && html.contains("Par canal"));
    assert!(!html.contains("Success rate"));
}

#[test]
fn an_out_file_that_cannot_be_written_is_an_io_error() {
    let env = env_with("");
    let out = env.dir.path().join("no/such/folder/page.html");
    let run = env.run(&["dashboard", "--out", out.to_str().unwrap()], NOW).code(74);
    assert!(run.stderr.contains("no/such/folder/page.html"), "{}", run.stderr);
    // Without --out, the page goes to standard output.
    let run = env.run(&["dashboard"], NOW).success();
    assert!(run.stdout.starts_with("<!DOCTYPE html>"));
    // Standard output that cannot take it: an I/O error, not a panic.
    if std::path::Path::new("/dev/full").exists() {
        for args in [&["dashboard"][..], &["metrics"][..]] {
            let full = std::fs::File::options().write(true).open("/dev/full").unwrap();
            let out = env.command(args, NOW).stdout(full).output().unwrap();
            assert_eq!(out.status.code(), Some(74), "{}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

#[test]
fn the_demo_folder_has_a_dashboard_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    support::rappel_in(dir.path(), &["demo", "--dir", "d"]).success();
    let out = support::rappel_in(
        dir.path(),
        &["--config", "d/rappel.toml", "dashboard", "--out", "d/page.html"],
    )
    .success();
    assert_eq!(out.stdout, "");
    let html = std::fs::read_to_string(dir.path().join("d/page.html")).unwrap();
    for kind in ["delay_alert", "report", "loan_created"] {
        assert!(html.contains(&format!("<td class=\"x\">{kind}</td>")), "{kind}");
    }
    assert!(html.contains("<td>rh</td>"), "the demo's attendance service");
    let out = support::rappel_in(dir.path(), &["--config", "d/rappel.toml", "metrics"]).success();
    assert!(
        out.stdout
            .contains(r#"rappel_job_last_run_exit_code{job="sync-attendance"} 0"#),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(r#"rappel_deliveries_total{status="sent",channel="email",kind="report"}"#)
    );
}

#[test]
fn a_link_or_a_device_at_out_is_refused_and_an_existing_page_keeps_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let env = env_with("");
    let precious = env.dir.path().join("precious");
    std::fs::write(&precious, "keep me").unwrap();
    let link = env.dir.path().join("link.html");
    std::os::unix::fs::symlink(&precious, &link).unwrap();
    let out = env.run(&["dashboard", "--out", link.to_str().unwrap()], NOW).code(74);
    assert!(out.stderr.contains("not a regular file"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    let fifo = env.dir.path().join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    env.run(&["dashboard", "--out", fifo.to_str().unwrap()], NOW).code(74);
    assert!(!std::fs::metadata(&fifo).unwrap().is_file(), "still a FIFO");
    // Nor does it write over the database or the configuration.
    let db_before = std::fs::read(env.db_path()).unwrap();
    for target in [env.db_path(), env.config_path()] {
        let out = env.run(&["dashboard", "--out", target.to_str().unwrap()], NOW).code(74);
        assert!(out.stderr.contains("holds something else"), "{}", out.stderr);
    }
    assert_eq!(std::fs::read(env.db_path()).unwrap(), db_before);
    env.run(&["stats"], NOW).success();
    // A page name as long as the file system allows.
    let long = env.dir.path().join(format!("{}.html", "p".repeat(250)));
    env.run(&["dashboard", "--out", long.to_str().unwrap()], NOW).success();
    env.run(&["dashboard", "--out", long.to_str().unwrap()], NOW).success();
    // A page the operator made readable by the web server's group alone stays so.
    let page = env.dir.path().join("index.html");
    std::fs::write(&page, "<!DOCTYPE html><p>the page before</p>").unwrap();
    std::fs::set_permissions(&page, std::fs::Permissions::from_mode(0o640)).unwrap();
    env.run(&["dashboard", "--out", page.to_str().unwrap()], NOW).success();
    assert!(std::fs::read_to_string(&page).unwrap().starts_with("<!DOCTYPE html>"));
    assert_eq!(std::fs::metadata(&page).unwrap().permissions().mode() & 0o777, 0o640);
}

#[test]
fn rows_written_by_hand_that_do_not_read_leave_the_rest_of_the_page() {
    let env = env_with("");
    env.db()
        .execute_batch(
            "INSERT INTO rappel_job_runs (job, started_at, finished_at, exit_code) VALUES
               ('deliver', '2026-03-10T06:50:00Z', '2026-03-10T06:50:01Z', 'abc');
             INSERT INTO rappel_deliveries (job, kind, dedupe_key, channel, recipient, status, attempts, last_error, created_at)
               VALUES ('j', 'loan_d1', 'blob', 'email', 'z@x', 'failed', 'many', x'00ff', '2026-03-10T06:00:00Z');",
        )
        .unwrap();
    let html = page(&env, &["--since", "7d"]);
    assert!(
        html.contains(
            r#"<td>deliver</td><td>2026-03-10 07:50</td><td class="n">1 s</td>
      <td><span class="badge bad">?</span>"#
        ),
        "a finished run whose exit code does not read: {html}"
    );
    let last = &html[html.find(r#"<section id="last">"#).unwrap()..];
    assert!(
        last.contains(r#"<p class="err">"#),
        "the section says it cannot be read"
    );
    assert!(html.contains("(not text)"), "a blob reason is counted as one");
    let out = env.run(&["metrics"], NOW).success();
    assert!(
        out.stdout.contains(r#"rappel_job_last_run_finished{job="deliver"} 1"#),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains(r#"rappel_job_last_run_exit_code{job="deliver"}"#),
        "{}",
        out.stdout
    );
}

#[test]
fn french_numbers_and_a_single_messages_status() {
    let env = env_with("");
    let config = std::fs::read_to_string(env.config_path())
        .unwrap()
        .replace("locale = \"en\"", "locale = \"fr\"");
    env.write_config(&config);
    let html = page(&env, &["--since", "2026-03-08"]);
    assert!(html.contains("<b>75,0 %</b>"), "a decimal comma");
    assert!(
        html.contains(">envoyé</span>") && html.contains(">en échec</span>"),
        "one message: singular"
    );
    assert!(!html.contains(r#"st-sent">envoyés</span>"#));
    // Reasons in the store's own words, said in French.
    env.db()
        .execute_batch(
            "INSERT INTO rappel_deliveries (job, kind, dedupe_key, channel, recipient, status, last_error, created_at)
               VALUES ('j', 'loan_d1', 'blob', 'email', 'z@x', 'failed', x'00ff', '2026-03-09T06:00:00Z'),
                      ('j', 'loan_d1', 'null', 'email', 'n@x', 'failed', NULL, '2026-03-09T06:00:00Z');",
        )
        .unwrap();
    let html = page(&env, &["--since", "2026-03-08"]);
    assert!(html.contains("(pas du texte)") && html.contains("aucun motif enregistré"));
}
