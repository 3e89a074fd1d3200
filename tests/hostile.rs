//! Hostile servers and hostile data: a server that trickles its replies, or
//! answers without end, or repeats our secrets; host rows with control
//! characters; files swapped behind rappel's back. Each is bounded, masked
//! or refused, and the run goes on.

mod support;

use std::io::Write;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use support::TestEnv;

/// An SMTP server that sends `220-please wait` every 300 ms and never
/// finishes its greeting: each read gets a byte well within any timeout.
fn trickling_smtp() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut out = stream;
                while out.write_all(b"220-please wait\r\n").is_ok() {
                    std::thread::sleep(Duration::from_millis(300));
                }
            });
        }
    });
    port
}

/// DESIGN §5: a send ends before its lease does. A server trickling its
/// greeting no longer holds a send past `lease_s` (another run would take
/// the row and send it too): the whole exchange has a deadline.
#[test]
fn a_trickling_server_cannot_hold_a_send_past_its_lease() {
    let port = trickling_smtp();
    let env = TestEnv::new(port, "");
    let config = std::fs::read_to_string(env.config_path())
        .unwrap()
        .replace("timeout_s = 2", "timeout_s = 1")
        .replace("lease_s = 10", "lease_s = 5");
    env.write_config(&config);
    let started = Instant::now();
    env.run(&["test-email", "--to", "someone@example.com"], "2026-03-10T07:00:00Z")
        .code(75);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the send outlived its 5 s lease: {took:?}"
    );
    let (status, error): (String, String) = env
        .db()
        .query_row("SELECT status, last_error FROM deliveries", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(status, "pending", "recorded by this run, within its lease");
    assert!(error.contains("deadline"), "{error}");
}
