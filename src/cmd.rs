//! The commands that are not jobs: set-up, database, checks, demo.

pub mod check;
pub mod dashboard;
pub mod db;
pub mod demo;
pub mod hand;
pub mod init;
pub mod log;
pub mod metrics;
pub mod purge;
pub mod show;
pub mod sources;
pub mod stats;
pub mod test_email;
pub mod upcoming;
