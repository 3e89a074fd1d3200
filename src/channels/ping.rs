//! Monitoring pings, healthchecks.io style: `<url>/start?rid=<run id>` when a
//! run begins, then `<url>?rid=` on success or `<url>/<exit code>?rid=`. A
//! ping that fails or hangs is logged and given up; it never fails the job.

use crate::config::Config;
use crate::exit::Exit;
use std::hash::{BuildHasher, Hasher};

pub struct Ping {
    agent: ureq::Agent,
    url: String,
    rid: String,
    job: String,
}

impl Ping {
    /// Pings `/start` if `[monitoring.ping_urls]` names `job`.
    pub fn start(config: &Config, job: &str) -> Option<Ping> {
        let url = config.ping_urls.get(job)?;
        let agent = ureq::Agent::new_with_config(
            ureq::config::Config::builder()
                .http_status_as_error(false)
                // As API calls: a redirect is not followed (the run id and
                // exit code go where the operator said, nowhere else).
                .max_redirects(0)
                .timeout_global(Some(config.ping_timeout))
                .user_agent(concat!("rappel/", env!("CARGO_PKG_VERSION")))
                .build(),
        );
        let ping = Ping {
            agent,
            url: url.clone(),
            rid: run_id(),
            job: job.to_string(),
        };
        ping.send(&format!("{}/start", ping.url));
        Some(ping)
    }

    /// Pings the end of the run with its exit code.
    pub fn finish(self, exit: Exit) {
        let url = match exit {
            Exit::Ok => self.url.clone(),
            other => format!("{}/{}", self.url, other.code()),
        };
        self.send(&url);
    }

    fn send(&self, url: &str) {
        let full = format!("{url}?rid={}", self.rid);
        match self.agent.get(&full).call() {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => log::warn!("{}: monitoring ping answered HTTP {}", self.job, r.status().as_u16()),
            Err(e) => log::warn!("{}: monitoring ping failed ({e}); the run goes on", self.job),
        }
    }
}

/// A random UUID (version 4) naming one run, as healthchecks.io's `rid` wants.
fn run_id() -> String {
    let random = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish()
    };
    let (a, b) = (random(), random());
    let a = (a & 0xffff_ffff_ffff_0fff) | 0x4000;
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_version_4_uuids_and_differ() {
        let (a, b) = (run_id(), run_id());
        assert_ne!(a, b);
        for id in [a, b] {
            let parts: Vec<&str> = id.split('-').collect();
            assert_eq!(
                parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
                vec![8, 4, 4, 4, 12],
                "{id}"
            );
            assert!(parts[2].starts_with('4'), "{id}");
            assert!("89ab".contains(&parts[3][..1]), "{id}");
        }
    }
}
