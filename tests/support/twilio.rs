//! A stand-in for Twilio's Messages API on 127.0.0.1: records each request and
//! answers with Twilio's documented shapes, or with what the test queued.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::Answer;

#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub authorization: Option<String>,
    pub form: HashMap<String, String>,
}

#[derive(Default)]
struct State {
    requests: Vec<Request>,
    /// One-shot answers to the next POSTs: (status, body, headers).
    queued: VecDeque<Answer>,
    /// Message SID -> (status, error code) for GETs.
    statuses: HashMap<String, (String, Option<i64>)>,
    accepted: Vec<Request>,
    /// How long each POST waits before its answer.
    delay: std::time::Duration,
}

pub struct FakeTwilio {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl FakeTwilio {
    /// The `[whatsapp]` section that sends to this server, its token written
    /// into `dir` (account ACtest, token s3cret-token).
    pub fn config(&self, dir: &std::path::Path) -> String {
        std::fs::write(dir.join("twilio-token"), "s3cret-token\n").unwrap();
        format!(
            r#"[whatsapp]
account_sid = "ACtest"
auth_token_file = "twilio-token"
from = "whatsapp:+14155238886"
sms_from = "+15005550006"
timeout_s = 2
api_base = "http://127.0.0.1:{}"
"#,
            self.port
        )
    }

    pub fn start() -> Self {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for mut req in server.incoming_requests() {
                let mut body = String::new();
                let _ = req.as_reader().read_to_string(&mut body);
                let form: HashMap<String, String> = body
                    .split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (decode(k), decode(v)))
                    .collect();
                let record = Request {
                    method: req.method().to_string(),
                    url: req.url().to_string(),
                    authorization: req
                        .headers()
                        .iter()
                        .find(|h| h.field.equiv("Authorization"))
                        .map(|h| h.value.to_string()),
                    form,
                };
                let mut st = shared.lock().unwrap();
                st.requests.push(record.clone());
                let is_post = record.method == "POST";
                let (status, body, headers) = if is_post {
                    match st.queued.pop_front() {
                        Some(answer) => answer,
                        None => {
                            let sid = format!("SM{:032}", st.accepted.len() + 1);
                            st.accepted.push(record);
                            (
                                201,
                                format!("{{\"sid\": \"{sid}\", \"status\": \"queued\", \"error_code\": null}}"),
                                vec![],
                            )
                        }
                    }
                } else {
                    let sid = record
                        .url
                        .rsplit('/')
                        .next()
                        .unwrap_or("")
                        .trim_end_matches(".json")
                        .to_string();
                    let (status, code) = st.statuses.get(&sid).cloned().unwrap_or(("sent".into(), None));
                    let code = code.map_or("null".into(), |c| c.to_string());
                    (
                        200,
                        format!("{{\"sid\": \"{sid}\", \"status\": \"{status}\", \"error_code\": {code}}}"),
                        vec![],
                    )
                };
                let delay = if is_post { st.delay } else { Default::default() };
                drop(st);
                std::thread::sleep(delay);
                super::respond(req, (status, body, headers));
            }
        });
        FakeTwilio { port, state }
    }

    /// Answers the next POST with this status, body and headers.
    pub fn answer_next(&self, status: u16, body: &str, headers: &[(&str, &str)]) {
        self.state
            .lock()
            .unwrap()
            .queued
            .push_back(super::answer(status, body, headers));
    }

    /// Forgets the answers queued and not used yet.
    pub fn clear_answers(&self) {
        self.state.lock().unwrap().queued.clear();
    }

    /// Makes every POST wait this long before its answer.
    pub fn set_delay(&self, delay: std::time::Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    /// What a status GET for `sid` will say.
    pub fn set_status(&self, sid: &str, status: &str, error_code: Option<i64>) {
        self.state
            .lock()
            .unwrap()
            .statuses
            .insert(sid.to_string(), (status.to_string(), error_code));
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Messages accepted (201), in order.
    pub fn accepted(&self) -> Vec<Request> {
        self.state.lock().unwrap().accepted.clone()
    }

    /// The `To` of every accepted message, sorted.
    pub fn accepted_to(&self) -> Vec<String> {
        let mut to: Vec<String> = self
            .accepted()
            .into_iter()
            .filter_map(|r| r.form.get("To").cloned())
            .collect();
        to.sort();
        to
    }
}
