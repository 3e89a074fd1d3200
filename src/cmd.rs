//! The commands that are not jobs: set-up, database, checks, demo.

pub mod check;
pub mod db;
pub mod demo;
pub mod init;
pub mod log;
pub mod purge;
pub mod stats;
pub mod sync;
pub mod test_email;
