//! rappel: sends the recurring messages and data pushes small business
//! applications depend on, from cron, never twice and never lost.

pub mod app;
pub mod channels;
pub mod chart;
pub mod cli;
pub mod clock;
pub mod cmd;
pub mod config;
pub mod db;
pub mod domain;
pub mod engine;
pub mod exit;
pub mod files;
pub mod instant;
pub mod jobs;
pub mod mask;
pub mod metrics;
pub mod output;
pub mod quiet;
pub mod recipient;
pub mod runner;
pub mod shorten;
pub mod store;
pub mod templates;
