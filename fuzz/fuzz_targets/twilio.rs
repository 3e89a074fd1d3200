//! Fuzz target: Twilio answers (status, `Retry-After`, body) classify without panicking, by the rules of DESIGN §5, into a retry the engine can schedule.

#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use chrono::{TimeDelta, Utc};
use libfuzzer_sys::fuzz_target;
use rappel::channels::SendError;
use rappel::channels::twilio;
use rappel::engine::backoff;
use rappel::instant;

#[derive(Arbitrary, Debug)]
struct Answer<'a> {
    status: u16,
    retry_after: Option<&'a str>,
    attempt: u8,
    body: &'a str,
}

fn check(status: u16, err: &SendError, attempt: u32) {
    let success = (200..300).contains(&status);
    match err {
        SendError::Credentials(_) => {
            assert!(!success || err.reason().contains("20003"), "{status}: {err}")
        }
        SendError::Permanent(_) => assert!(
            !success && !matches!(status, 401 | 403 | 408 | 429 | 500..=599),
            "{status}: {err}"
        ),
        SendError::Temporary { retry_after, .. } | SendError::Throttled { retry_after, .. } => {
            // What the engine does with it (engine::record): the next attempt's time, stored as text.
            let wait = backoff::delay(
                attempt,
                Duration::from_secs(60),
                Duration::from_secs(21_600),
                *retry_after,
            );
            let delta = TimeDelta::from_std(wait).unwrap_or(TimeDelta::hours(6));
            let now = Utc::now();
            let next = now
                .checked_add_signed(delta)
                .unwrap_or_else(|| panic!("{status} Retry-After {retry_after:?}: now + {wait:?} overflows"));
            assert!(
                instant::parse(&instant::format(next)).is_some(),
                "{status} Retry-After {retry_after:?}: the next attempt {next:?} cannot be stored"
            );
        }
    }
    assert!(!err.reason().is_empty());
}

fuzz_target!(|a: Answer<'_>| {
    let retry_after = a.retry_after.and_then(twilio::retry_after);
    let attempt = u32::from(a.attempt);
    match twilio::sent(a.status, retry_after, a.body) {
        Ok(_) => assert!((200..300).contains(&a.status), "{} accepted", a.status),
        Err(e) => check(a.status, &e, attempt),
    }
    match twilio::message_status(a.status, retry_after, a.body) {
        Ok(_) => assert!((200..300).contains(&a.status), "{} accepted", a.status),
        Err(e) => check(a.status, &e, attempt),
    }
    if !(200..300).contains(&a.status) {
        let e = twilio::classify(a.status, retry_after, a.body);
        check(a.status, &e, attempt);
    }
    let _ = twilio::is_e164(a.body);
});
