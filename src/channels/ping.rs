//! Monitoring pings, healthchecks.io style: `<url>/start?rid=<run id>` when a
//! run begins, then `<url>?rid=` on success or `<url>/<exit code>?rid=`. A
//! ping that fails or hangs is logged and given up; it never fails the job.

use crate::config::Config;
use crate::exit::Exit;

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
            rid: crate::output::run_id().to_string(),
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
