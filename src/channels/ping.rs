//! Monitoring pings, healthchecks.io style: `GET <url>/start?rid=<run id>`
//! when a run begins, then `POST <url>?rid=` on success or
//! `POST <url>/<exit code>?rid=`, whose text body is the run's summary and
//! its warning and error lines (healthchecks.io shows it with the ping; it
//! keeps the first 100 kB, ours stays a few kB). A ping that fails or hangs
//! is logged and given up; it never fails the job.

use crate::config::Config;
use crate::exit::Exit;

pub struct Ping {
    agent: ureq::Agent,
    url: String,
    rid: String,
    job: String,
    /// Where this run's kept lines start (`output::kept_since`).
    mark: u64,
}

impl Ping {
    /// Pings `/start` if `[monitoring.ping_urls]` names `run`.
    pub fn start(config: &Config, run: crate::domain::Run) -> Option<Ping> {
        let job = run.as_str();
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
            mark: crate::output::kept_mark(),
        };
        ping.send(&format!("{}/start", ping.url), None);
        Some(ping)
    }

    /// Pings the end of the run with its exit code; the body is the
    /// summary and warning or error lines logged since the start, then
    /// `error` (why the run stopped, when it did), secrets masked.
    pub fn finish(self, exit: Exit, error: Option<&str>) {
        let url = match exit {
            Exit::Ok => self.url.clone(),
            other => format!("{}/{}", self.url, other.code()),
        };
        let mut lines = crate::output::kept_since(self.mark);
        if let Some(e) = error {
            lines.push(format!("error: {}", crate::mask::mask(e)));
        }
        let body = lines.join("\n");
        self.send(&url, Some(&body));
    }

    fn send(&self, url: &str, body: Option<&str>) {
        let full = format!("{url}?rid={}", self.rid);
        let answer = match body {
            None => self.agent.get(&full).call(),
            Some(body) => self
                .agent
                .post(&full)
                .content_type("text/plain; charset=utf-8")
                .send(body),
        };
        // The start ping comes before the work, the end ping after it.
        let then = if body.is_none() {
            "the run goes on"
        } else {
            "the run's outcome stands"
        };
        match answer {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => log::warn!(
                "{}: monitoring ping answered HTTP {}; {then}",
                self.job,
                r.status().as_u16()
            ),
            Err(ureq::Error::Timeout(_)) => log::warn!(
                "{}: monitoring ping got no answer within monitoring.ping_timeout_s; {then}",
                self.job
            ),
            Err(e) => log::warn!("{}: monitoring ping failed ({e}); {then}", self.job),
        }
    }
}
