//! rappel's end-to-end suite, one binary: each module drives the built
//! `rappel` against real SQLite files and real SMTP and HTTP servers on
//! 127.0.0.1 (`support`), with a fixed `--now`.

mod support;

mod attendance;
mod bad_input;
mod cli;
mod contrib;
mod dashboard;
mod delay_alerts;
mod delivery;
mod faults;
mod hand;
mod hostile;
mod layout;
mod metrics;
mod migrations;
mod naive_time;
mod operate;
mod postgres;
mod reminders;
mod reports;
mod sessions;
mod source_rows;
mod sources;
mod throttle;
mod time_matrix;
mod torture;
mod upcoming;
