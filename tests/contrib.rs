//! The scheduler files under contrib/ (crontab, systemd units, Task Scheduler tasks, logrotate) run every job.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The jobs run on a schedule; each has its crontab line, timer and task.
const JOBS: [&str; 6] = [
    "check-delay-alerts",
    "send-reports",
    "send-reminders",
    "sync-attendance",
    "deliver",
    "purge",
];

const TASK_NAMESPACE: &str = "http://schemas.microsoft.com/windows/2004/02/mit/task";

fn contrib(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib").join(sub)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The files in `dir` whose names end with `suffix`, sorted.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| file_name(path).ends_with(suffix))
        .collect();
    found.sort();
    found
}

fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap()
}

fn sorted_jobs() -> BTreeSet<String> {
    JOBS.iter().map(|job| job.to_string()).collect()
}

// ---------------------------------------------------------------- Windows

/// The element at `path` below `node`, following the first child of each name.
fn element<'a, 'i>(node: roxmltree::Node<'a, 'i>, path: &[&str]) -> Option<roxmltree::Node<'a, 'i>> {
    path.iter().try_fold(node, |parent, name| {
        parent
            .children()
            .find(|child| child.is_element() && child.tag_name().name() == *name)
    })
}

/// The trimmed text of the element at `path` below `node`.
fn text<'a, 'i>(node: roxmltree::Node<'a, 'i>, path: &[&str]) -> Option<&'a str> {
    element(node, path).and_then(|n| n.text()).map(str::trim)
}

/// How often a Task Scheduler task repeats its job within the day, as in the crontab.
fn repetition(job: &str) -> Option<&'static str> {
    match job {
        "send-reports" => Some("PT1M"),
        "send-reminders" | "deliver" => Some("PT5M"),
        "sync-attendance" => Some("PT15M"),
        _ => None,
    }
}

#[test]
fn every_windows_task_runs_its_job_once_at_a_time() {
    let mut seen = BTreeSet::new();
    for path in files(&contrib("windows"), ".xml") {
        let name = file_name(&path);
        let job = name
            .strip_prefix("rappel-")
            .and_then(|n| n.strip_suffix(".xml"))
            .unwrap_or_else(|| panic!("{name}: expected rappel-<job>.xml"));
        assert!(JOBS.contains(&job), "{name}: {job} is not a job");
        seen.insert(job.to_string());

        let source = read(&path);
        let doc = roxmltree::Document::parse(&source).unwrap_or_else(|e| panic!("{name}: {e}"));
        let task = doc.root_element();
        assert_eq!(task.tag_name().name(), "Task", "{name}");
        assert_eq!(task.tag_name().namespace(), Some(TASK_NAMESPACE), "{name}");
        assert_eq!(task.attribute("version"), Some("1.4"), "{name}");

        let settings = |key: &str| text(task, &["Settings", key]);
        assert_eq!(settings("MultipleInstancesPolicy"), Some("IgnoreNew"), "{name}");
        assert_eq!(settings("StartWhenAvailable"), Some("true"), "{name}");
        let limit = settings("ExecutionTimeLimit").unwrap_or_else(|| panic!("{name}: no ExecutionTimeLimit"));
        assert!(
            limit.starts_with("PT") && limit.len() > 3,
            "{name}: ExecutionTimeLimit {limit}"
        );

        let command = text(task, &["Actions", "Exec", "Command"]).unwrap_or_else(|| panic!("{name}: no Command"));
        assert!(command.ends_with("rappel.exe"), "{name}: Command {command}");
        let arguments = text(task, &["Actions", "Exec", "Arguments"]).unwrap_or_else(|| panic!("{name}: no Arguments"));
        let words: Vec<&str> = arguments.split_whitespace().collect();
        assert!(words.contains(&"-q"), "{name}: Arguments {arguments}");
        assert!(words.contains(&job), "{name}: Arguments {arguments} do not run {job}");
        if job == "purge" {
            assert!(
                arguments.contains("purge --older-than "),
                "{name}: Arguments {arguments}"
            );
        }

        let trigger =
            element(task, &["Triggers", "CalendarTrigger"]).unwrap_or_else(|| panic!("{name}: no CalendarTrigger"));
        assert!(text(trigger, &["StartBoundary"]).is_some(), "{name}: no StartBoundary");
        assert_eq!(
            text(trigger, &["Repetition", "Interval"]),
            repetition(job),
            "{name}: repetition"
        );
        let schedule = if job == "purge" {
            "ScheduleByWeek"
        } else {
            "ScheduleByDay"
        };
        assert!(element(trigger, &[schedule]).is_some(), "{name}: no {schedule}");
    }
    assert_eq!(seen, sorted_jobs(), "one contrib/windows/rappel-<job>.xml per job");
    assert!(contrib("windows").join("install.ps1").is_file());
}

// ---------------------------------------------------------------- cron

/// `NAME=value`: a crontab environment line.
fn is_variable(line: &str) -> bool {
    line.split_once('=')
        .is_some_and(|(name, _)| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

#[test]
fn the_crontab_runs_every_job_quietly() {
    let path = contrib("cron").join("rappel.crontab");
    let mut seen = BTreeSet::new();
    for (number, line) in read(&path).lines().enumerate() {
        let line = line.trim();
        let number = number + 1;
        if line.is_empty() || line.starts_with('#') || is_variable(line) {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert!(
            fields.len() > 5,
            "line {number}: five schedule fields and a command: {line}"
        );
        for field in &fields[..5] {
            assert!(
                field.chars().all(|c| c.is_ascii_alphanumeric() || "*/,-".contains(c)),
                "line {number}: schedule field {field:?}"
            );
        }
        // The command up to its redirections or pipe.
        let command: Vec<&str> = fields[5..]
            .iter()
            .copied()
            .take_while(|word| !word.contains('>') && !word.contains('|'))
            .collect();
        let program = command
            .iter()
            .position(|word| *word == "rappel" || word.ends_with("/rappel"))
            .unwrap_or_else(|| panic!("line {number}: does not run rappel: {line}"));
        let args = &command[program + 1..];
        assert!(
            args.contains(&"-q"),
            "line {number}: without -q cron mails every run: {line}"
        );
        let job = args
            .iter()
            .find(|word| JOBS.contains(word))
            .unwrap_or_else(|| panic!("line {number}: runs no job: {line}"));
        if *job == "purge" {
            assert!(
                args.contains(&"--older-than"),
                "line {number}: purge needs --older-than: {line}"
            );
        }
        seen.insert(job.to_string());
    }
    assert_eq!(seen, sorted_jobs(), "every job has its crontab line");
}

// ---------------------------------------------------------------- systemd

/// The values of `key=` in a unit file, comments left out.
fn directives<'t>(text: &'t str, key: &str) -> Vec<&'t str> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#') && !line.starts_with(';'))
        .filter_map(|line| line.split_once('='))
        .filter(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
        .collect()
}

/// The one value of `key=`.
fn directive<'t>(text: &'t str, key: &str, name: &str) -> &'t str {
    match directives(text, key).as_slice() {
        [value] => value,
        values => panic!("{name}: expected one {key}=, found {values:?}"),
    }
}

#[test]
fn every_timer_starts_a_known_job_and_catches_up() {
    let dir = contrib("systemd");
    let mut seen = BTreeSet::new();
    for path in files(&dir, ".timer") {
        let name = file_name(&path);
        let timer_job = name
            .strip_prefix("rappel-")
            .and_then(|n| n.strip_suffix(".timer"))
            .unwrap_or_else(|| panic!("{name}: expected rappel-<job>.timer"));
        let text = read(&path);
        assert_eq!(directive(&text, "Persistent", name), "true", "{name}");
        assert!(!directives(&text, "OnCalendar").is_empty(), "{name}: no OnCalendar=");
        let unit = directive(&text, "Unit", name);
        let job = match unit.strip_prefix("rappel@").and_then(|u| u.strip_suffix(".service")) {
            Some(instance) => {
                assert!(
                    dir.join("rappel@.service").is_file(),
                    "{name}: {unit} needs rappel@.service"
                );
                assert_ne!(
                    instance, "purge",
                    "{name}: purge needs an argument: rappel-purge.service"
                );
                instance
            }
            None => {
                assert!(
                    dir.join(unit).is_file(),
                    "{name}: Unit={unit} is not in contrib/systemd"
                );
                assert_eq!(unit, "rappel-purge.service", "{name}");
                "purge"
            }
        };
        assert!(JOBS.contains(&job), "{name}: {job} is not a job");
        assert_eq!(job, timer_job, "{name} starts {unit}");
        seen.insert(job.to_string());
    }
    assert_eq!(seen, sorted_jobs(), "every job has its timer");
}

#[test]
fn the_services_are_hardened_oneshots() {
    let dir = contrib("systemd");
    for name in ["rappel@.service", "rappel-purge.service"] {
        let text = read(&dir.join(name));
        for (key, value) in [
            ("Type", "oneshot"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("NoNewPrivileges", "yes"),
            ("PrivateTmp", "yes"),
            ("User", "rappel"),
            ("UMask", "0007"),
        ] {
            assert_eq!(directive(&text, key, name), value, "{name}: {key}=");
        }
        for key in ["LoadCredential", "ReadWritePaths", "Group", "Environment"] {
            assert!(!directives(&text, key).is_empty(), "{name}: no {key}=");
        }
        // A temporary failure (75) must show as a failed unit.
        for value in directives(&text, "SuccessExitStatus") {
            assert!(
                !value.split_whitespace().any(|code| code == "75"),
                "{name}: SuccessExitStatus={value}"
            );
        }
    }
    let template = read(&dir.join("rappel@.service"));
    let exec = directive(&template, "ExecStart", "rappel@.service");
    assert!(
        exec.contains(" -q ") && exec.ends_with("%i"),
        "rappel@.service: ExecStart={exec}"
    );
    let purge = read(&dir.join("rappel-purge.service"));
    let exec = directive(&purge, "ExecStart", "rappel-purge.service");
    assert!(
        exec.contains(" -q purge --older-than "),
        "rappel-purge.service: ExecStart={exec}"
    );
}

/// Runs `systemd-analyze verify` on a copy of contrib/systemd, with the
/// template instantiated for every timer's `Unit=` and `edit` applied to each
/// file's text. Its output (stderr, then stdout), or `None` without systemd-analyze.
fn verify_units(edit: impl Fn(&str, String) -> String) -> Option<String> {
    match Command::new("systemd-analyze").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => {
            eprintln!("systemd-analyze is not available: the units are not verified");
            return None;
        }
    }
    let dir = contrib("systemd");
    let copy = tempfile::tempdir().unwrap();
    let template = read(&dir.join("rappel@.service"));
    let mut units = Vec::new();
    let mut write = |unit: &str, text: String| {
        let path = copy.path().join(unit);
        fs::write(&path, edit(unit, text)).unwrap();
        units.push(path);
    };
    for path in files(&dir, "") {
        let name = file_name(&path);
        if name == "rappel@.service" || !(name.ends_with(".service") || name.ends_with(".timer")) {
            continue;
        }
        let text = read(&path);
        if name.ends_with(".timer") {
            let unit = directive(&text, "Unit", name).to_string();
            if unit.starts_with("rappel@") {
                write(&unit, template.clone());
            }
        }
        write(name, text);
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&units)
        .output()
        .unwrap();
    Some(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    ))
}

/// What `systemd-analyze verify` says about the machine rather than the
/// units: /usr/local/bin/rappel is not installed, the rappel user does not exist.
fn about_the_machine(line: &str) -> bool {
    let line = line.to_ascii_lowercase();
    let unit_error = [
        "unknown key",
        "unknown section",
        "failed to parse",
        "bad unit file",
        "refusing",
        "invalid",
    ];
    if unit_error.iter().any(|e| line.contains(e)) {
        return false;
    }
    let missing_binary = line.contains("/usr/local/bin/rappel")
        && [
            "is not executable",
            "failed to prepare filename",
            "no such file or directory",
        ]
        .iter()
        .any(|e| line.contains(e));
    let account = [
        "user rappel",
        "group rappel",
        "user 'rappel'",
        "group 'rappel'",
        "user=rappel",
        "group=rappel",
    ];
    let missing_account = account.iter().any(|a| line.contains(a))
        && ["unknown", "resolve", "not exist", "no such", "not found"]
            .iter()
            .any(|e| line.contains(e));
    missing_binary || missing_account
}

fn unit_errors(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter(|line| !line.trim().is_empty() && !about_the_machine(line))
        .collect()
}

#[test]
fn systemd_analyze_verifies_the_units() {
    let Some(output) = verify_units(|_, text| text) else {
        return;
    };
    let errors = unit_errors(&output);
    assert!(errors.is_empty(), "systemd-analyze verify:\n{}", errors.join("\n"));
}

#[test]
fn systemd_analyze_check_catches_a_misspelt_key() {
    let Some(output) = verify_units(|unit, text| {
        if unit == "rappel-deliver.timer" {
            text.replace("Persistent=true", "Persistant=true")
        } else {
            text
        }
    }) else {
        return;
    };
    let errors = unit_errors(&output);
    assert!(
        errors.iter().any(|line| line.contains("Persistant")),
        "the misspelt key went unnoticed:\n{output}"
    );
}

// ---------------------------------------------------------------- logrotate

#[test]
fn logrotate_rotates_the_cron_log() {
    let text = read(&contrib("logrotate").join("rappel"));
    assert!(text.contains("/var/log/rappel/rappel.log"));
    let words: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .flat_map(str::split_whitespace)
        .collect();
    assert!(words.contains(&"rotate"), "no rotate");
    assert!(words.contains(&"missingok"), "no missingok");
    let cron = read(&contrib("cron").join("rappel.crontab"));
    assert!(
        cron.contains("/var/log/rappel/rappel.log"),
        "the crontab writes the rotated log"
    );
}
