//! The configuration file as written (serde, unknown keys rejected). Every
//! section of DESIGN §3 is here so a complete file parses; `Config::try_from`
//! turns it into typed values.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub database: Option<super::database::RawDatabase>,
    pub timezone: Option<String>,
    pub naive_timezone: Option<String>,
    pub locale: Option<String>,
    pub templates_dir: Option<String>,
    pub site_url: Option<String>,
    pub email: Option<RawEmail>,
    pub whatsapp: Option<RawWhatsapp>,
    #[serde(default)]
    pub delivery: RawDelivery,
    #[serde(default)]
    pub delay_alerts: RawDelayAlerts,
    pub reports: Option<RawReports>,
    pub reminders: Option<RawReminders>,
    pub attendance: Option<RawAttendance>,
    #[serde(default)]
    pub monitoring: RawMonitoring,
    /// `[sources.<table>]`: input tables read from the host's own tables.
    #[serde(default)]
    pub sources: BTreeMap<String, super::sources::RawSource>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    pub from: Option<String>,
    pub transport: Option<String>,
    pub outbox_dir: Option<String>,
    pub sendmail_command: Option<String>,
    pub extra_ca_file: Option<String>,
    pub smtp: Option<RawSmtp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmtp {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub security: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
    pub timeout_s: Option<u64>,
    pub connections: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDelivery {
    pub max_attempts: Option<u32>,
    pub retry_base_s: Option<u64>,
    pub retry_cap_s: Option<u64>,
    pub lease_s: Option<u64>,
    pub rate_per_s: Option<f64>,
    pub redirect_to: Option<String>,
    pub quiet_hours: Option<String>,
    pub send_windows: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDelayAlerts {
    pub threshold_days: Option<u32>,
    pub rearm_hours: Option<u32>,
    pub alert_at: Option<String>,
    pub recipients: Option<Vec<String>>,
    pub stage_threshold_days: Option<BTreeMap<String, u32>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMonitoring {
    pub log_format: Option<String>,
    pub ping_urls: Option<BTreeMap<String, String>>,
    pub ping_timeout_s: Option<u64>,
    pub textfile_dir: Option<String>,
}

// The sections below belong to jobs that validate them when they land; they
// are parsed now so that a complete file is accepted and typos are caught.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWhatsapp {
    pub transport: Option<String>,
    pub outbox_dir: Option<String>,
    pub account_sid: Option<String>,
    pub auth_token: Option<String>,
    pub auth_token_env: Option<String>,
    pub auth_token_file: Option<String>,
    pub from: Option<String>,
    pub sms_from: Option<String>,
    pub api_base: Option<String>,
    pub timeout_s: Option<u64>,
    pub default_region: Option<String>,
    pub content_sids: Option<BTreeMap<String, RawContentSid>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawContentSid {
    pub sid: String,
    #[serde(default)]
    pub variables: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReports {
    pub attachments_dir: Option<String>,
    pub query_timeout_s: Option<u64>,
    pub query_max_rows: Option<u64>,
    pub definitions: Option<BTreeMap<String, RawReportDefinition>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReportDefinition {
    pub query: String,
    pub skip_if_empty: Option<bool>,
    pub keep_attachment: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReminders {
    pub loan_d2_at: Option<String>,
    pub loan_d1_at: Option<String>,
    pub loan_due_at: Option<String>,
    pub loan_short_notice_hours: Option<u32>,
    pub loan_short_notice_terms: Option<Vec<String>>,
    pub loan_overdue_at: Option<String>,
    pub loan_overdue_max: Option<u32>,
    pub session_eve_at: Option<String>,
    pub session_day_at: Option<String>,
    pub inactivity_days: Option<u32>,
    pub inactivity_at: Option<String>,
    pub weekly_digest_at: Option<String>,
    pub disabled_kinds: Option<Vec<String>>,
    pub channels: Option<String>,
    pub channel_order: Option<Vec<String>>,
    pub fallback_after_minutes: Option<u32>,
    pub channels_by_kind: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAttendance {
    pub max_attempts: Option<u32>,
    pub services: Option<BTreeMap<String, RawService>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub base_url: Option<String>,
    pub users_endpoint: Option<String>,
    pub attendance_endpoint: Option<String>,
    pub auth: Option<String>,
    pub token: Option<String>,
    pub token_env: Option<String>,
    pub token_file: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
    pub batch_size: Option<u32>,
    pub timeout_s: Option<u64>,
    pub terminals: Option<Vec<String>>,
    pub transport: Option<String>,
}
