//! Host names resolved once per run for the HTTP agents (Twilio, the HR
//! APIs): ureq resolves the host before every request, even one that goes
//! over a pooled keep-alive connection, and with a timeout set it starts a
//! thread for each lookup. The first lookup of a host and port keeps
//! ureq's own resolver and timeout; the next requests reuse its addresses.

use std::collections::HashMap;
use std::sync::Mutex;

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// A resolver that remembers each host's addresses for the agent's life
/// (one run).
#[derive(Debug, Default)]
pub struct OncePerRun {
    inner: DefaultResolver,
    known: Mutex<HashMap<String, ResolvedSocketAddrs>>,
}

impl Resolver for OncePerRun {
    /// The addresses of `uri`'s host and port: those found the first time,
    /// by ureq's resolver within `timeout`. Errors: ureq's (host not found,
    /// timed out).
    fn resolve(&self, uri: &Uri, config: &Config, timeout: NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let key = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or(""),
            uri.authority().map_or("", |a| a.as_str())
        );
        if let Some(addrs) = self.known.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(addrs.clone());
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, addrs.clone());
        Ok(addrs)
    }
}

/// An agent with `config` whose host lookups are made once per run.
pub fn agent(config: Config) -> ureq::Agent {
    ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::default(),
        OncePerRun::default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_host_and_port_is_looked_up_once() {
        let resolver = OncePerRun::default();
        let config = Config::default();
        let at = |uri: &str| {
            let uri: Uri = uri.parse().unwrap();
            resolver.resolve(&uri, &config, NextTimeout::default()).unwrap()
        };
        let first = at("http://127.0.0.1:2526/a");
        assert_eq!(first[0], "127.0.0.1:2526".parse().unwrap());
        assert_eq!(at("http://127.0.0.1:2526/b"), first);
        at("http://127.0.0.1:2527/a");
        assert_eq!(resolver.known.lock().unwrap().len(), 2, "one entry per host and port");
    }
}
