//! A stand-in for an HR service's API on 127.0.0.1: answers the users list,
//! records each posted batch, and answers what the test queued, slowly, or
//! not at all until released.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Answer;

#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub authorization: Option<String>,
    pub idempotency_key: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
    /// The status it was answered with.
    pub status: u16,
}

impl Request {
    /// The `log_id`s of a posted batch, in body order; none for a body cut
    /// off mid-request (a sender killed while posting: no server takes it).
    pub fn log_ids(&self) -> Vec<i64> {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&self.body) else {
            return Vec::new();
        };
        v["attendance"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["log_id"].as_i64().unwrap())
            .collect()
    }
}

struct State {
    requests: Vec<Request>,
    queued: VecDeque<Answer>,
    users: String,
    /// Each POST waits this long before its answer.
    delay: Duration,
    /// The POST with this number (1-based) is not answered until `release`.
    hold: Option<usize>,
    released: bool,
}

pub struct FakeHr {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

impl FakeHr {
    pub fn start() -> Self {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            requests: Vec::new(),
            queued: VecDeque::new(),
            users: r#"{"users":[]}"#.into(),
            delay: Duration::ZERO,
            hold: None,
            released: false,
        }));
        let shared = state.clone();
        std::thread::spawn(move || {
            for mut req in server.incoming_requests() {
                let mut body = String::new();
                let _ = req.as_reader().read_to_string(&mut body);
                let header = |name: &'static str| {
                    req.headers()
                        .iter()
                        .find(|h| h.field.equiv(name))
                        .map(|h| h.value.to_string())
                };
                let record = Request {
                    method: req.method().to_string(),
                    url: req.url().to_string(),
                    authorization: header("Authorization"),
                    idempotency_key: header("Idempotency-Key"),
                    content_type: header("Content-Type"),
                    body,
                    status: 0,
                };
                let mut st = shared.lock().unwrap();
                st.requests.push(record.clone());
                let posts = st.requests.iter().filter(|r| r.method == "POST").count();
                let (status, body, headers) = if record.method == "POST" {
                    st.queued.pop_front().unwrap_or_else(|| {
                        let n = record.body.matches("\"log_id\"").count();
                        (200, format!("{{\"received\":{n}}}"), vec![])
                    })
                } else {
                    (200, st.users.clone(), vec![])
                };
                if let Some(last) = st.requests.last_mut() {
                    last.status = status;
                }
                let delay = st.delay;
                let held = record.method == "POST" && st.hold == Some(posts);
                drop(st);
                if held {
                    let until = Instant::now() + Duration::from_secs(30);
                    while Instant::now() < until && !shared.lock().unwrap().released {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                if record.method == "POST" && !delay.is_zero() {
                    std::thread::sleep(delay);
                }
                super::respond(req, (status, body, headers));
            }
        });
        FakeHr { port, state }
    }

    /// `http://127.0.0.1:<port>`
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Answers the next POST with this status, body and headers.
    pub fn answer_next(&self, status: u16, body: &str, headers: &[(&str, &str)]) {
        self.state
            .lock()
            .unwrap()
            .queued
            .push_back(super::answer(status, body, headers));
    }

    /// What the users list answers.
    pub fn set_users(&self, body: &str) {
        self.state.lock().unwrap().users = body.to_string();
    }

    pub fn set_delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    /// Holds the `n`th POST (1-based) unanswered until `release`.
    pub fn hold(&self, n: usize) {
        let mut st = self.state.lock().unwrap();
        st.hold = Some(n);
        st.released = false;
    }

    pub fn release(&self) {
        self.state.lock().unwrap().released = true;
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn posts(&self) -> Vec<Request> {
        self.requests().into_iter().filter(|r| r.method == "POST").collect()
    }

    /// Waits until `n` POSTs arrived.
    pub fn wait_posts(&self, n: usize, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if self.posts().len() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}
