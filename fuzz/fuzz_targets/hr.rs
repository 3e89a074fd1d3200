//! Fuzz target: what HR APIs answer (batch results, users lists, `Retry-After`, bodies to show) is read without panicking, bounded, and with the service's secrets masked.

#![no_main]

use std::path::Path;
use std::time::Duration;

use arbitrary::Arbitrary;
use chrono::DateTime;
use libfuzzer_sys::fuzz_target;
use rappel::channels::http::{self, HrApi};
use rappel::jobs::attendance::{batch, users};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    answer: &'a str,
    ids: Vec<i64>,
    now: i64,
    secret: &'a str,
    username: &'a str,
    basic: bool,
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A service with these credentials, through the configuration as a user writes it.
fn service(secret: &str, username: &str, basic: bool) -> Option<rappel::config::ServiceConfig> {
    let auth = if basic {
        format!(
            "auth = \"basic\"\nusername = {}\npassword = {}\n",
            toml_string(username),
            toml_string(secret)
        )
    } else {
        format!("auth = \"bearer\"\ntoken = {}\n", toml_string(secret))
    };
    let text = format!(
        "[attendance.services.rh]\nbase_url = \"https://hr.example.com\"\nusers_endpoint = \"/users\"\n\
         attendance_endpoint = \"/att\"\n{auth}"
    );
    let config = rappel::config::load_str(&text, Path::new("/nonexistent/rappel-fuzz/rappel.toml")).ok()?;
    config.attendance.services.into_iter().next()
}

fuzz_target!(|input: Input<'_>| {
    let answer = input.answer;

    // Batch results: one verdict per log, in order.
    let verdicts = batch::verdicts(answer, &input.ids);
    assert_eq!(verdicts.len(), input.ids.len());
    let has_results = serde_json::from_str::<serde_json::Value>(answer)
        .ok()
        .is_some_and(|v| v.get("results").is_some());
    if !has_results {
        assert!(verdicts.iter().all(|v| *v == batch::Verdict::Sent));
    }

    // Users list: every entry kept or named as skipped.
    if let Ok((kept, skipped)) = users::parse(answer) {
        let value: serde_json::Value = serde_json::from_str(answer).expect("parse accepted it");
        let entries = value["users"].as_array().expect("parse found the array").len();
        assert_eq!(kept.len() + skipped.len(), entries);
    }

    // Retry-After: never beyond a week, whatever the date.
    if let Some(now) = DateTime::from_timestamp(input.now, 0) {
        if let Some(wait) = http::retry_after(answer, now) {
            assert!(wait <= Duration::from_secs(7 * 24 * 3_600), "{answer:?}: {wait:?}");
        }
    }

    // Excerpts: one line, bounded, never empty.
    let shown = http::excerpt(answer);
    assert!(!shown.is_empty());
    assert!(shown.chars().count() <= 301, "{} chars", shown.chars().count());
    assert!(!shown.chars().any(char::is_control), "{shown:?}");

    // Masking: no secret (nor the Authorization credentials) survives.
    if let Some(cfg) = service(input.secret, input.username, input.basic) {
        // A token that cannot be a header is refused before any request.
        let Ok(api) = HrApi::new(&cfg) else { return };
        let masked = api.mask(answer);
        let secret = input.secret;
        // Secrets under 4 bytes are not masked (rappel::mask::register).
        if secret.len() >= 4 && !secret.contains('*') {
            assert!(!masked.contains(secret), "{secret:?} shown in {masked:?}");
        }
    }
});
