//! An SMTP server on 127.0.0.1 that speaks just enough of the protocol to fail
//! where a test tells it to: at the greeting, at AUTH, at RCPT, at the end of
//! DATA, by going silent, or by dropping the connection in the middle of DATA.
//! It may offer PIPELINING (RFC 2920), and notes the transactions whose MAIL,
//! RCPT and DATA came in one write.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where and how the server fails.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// Accepts every message.
    None,
    /// `421` instead of the greeting, then hangs up (too many connections).
    Greeting421,
    /// `421` to the next MAIL FROM and hangs up (a server closing an idle
    /// session), then accepts as `None`.
    Mail421Once,
    /// `535` to AUTH (credentials rejected).
    Auth535,
    /// `550` to every RCPT (no such mailbox).
    Rcpt550,
    /// `451` at the end of DATA (try later).
    Data451,
    /// Never answers the end of DATA (hangs up after this long).
    Silent(Duration),
    /// Hangs up after the first line of the message, before its end.
    DropMidData,
    /// Accepts each message (250), then closes the connection, without a 421.
    CloseAfterMessage,
    /// Accepts each message with a bare `250` and no text (RFC 5321 §4.2
    /// makes the text optional).
    BareReply,
    /// Accepts each message, answering the end of the first `first` after
    /// `each` and of the others after `then` (a busy server's content scan):
    /// the message is delivered once its end is read, whether or not the
    /// client waits for the reply.
    /// Answers the end of DATA with `354` (a server out of step: not a
    /// delivery), then as `None`.
    Reply354AtEnd,
    /// Refuses the end of DATA with a `451` whose text holds a bare CR and
    /// LF (a malformed answer), then as `None`.
    Data451Broken,
    /// Answers each RCPT with its 250 and a 354 nothing asked for, in one
    /// write.
    Stray354AfterRcpt,
    /// Answers DATA with its 354 and a 250 nothing asked for, in one write
    /// (a reply to the "." sent before the content), then refuses the end
    /// of the message with a 550.
    Stray250AfterData,
    /// Answers the end of DATA with a line that is no SMTP reply.
    GarbageAtEnd,
    /// Answers the end of DATA with `250`, then a second `250` no command
    /// asked for: every later reply is one line late.
    ExtraReplyAtEnd,
    /// Reads nothing of a message's content for this long after its 354,
    /// then reads it and accepts it at once (a server reading slowly: the
    /// content waits in the sockets' buffers).
    PauseBeforeContent(Duration),
    /// Waits this long before every reply, the greeting's too.
    SlowReplies(Duration),
    SlowEnd {
        each: Duration,
        first: usize,
        then: Duration,
    },
}

#[derive(Default)]
struct State {
    /// Messages accepted (250 to the end of DATA), with their recipients.
    accepted: Vec<Vec<String>>,
    /// Transactions whose RCPT was already waiting when MAIL was read.
    pipelined: usize,
    /// Transactions whose MAIL was already waiting when the message before
    /// it ended (RFC 2920 §3.1: sent with that message's content).
    ahead: usize,
    /// Transactions begun (MAIL) and never ended by a "." or RSET: the
    /// connection closed or reset first, and nothing was delivered.
    abandoned: usize,
    /// `QUIT` lines received as a message's content.
    quit_in_data: usize,
}

pub struct FaultySmtp {
    pub port: u16,
    fault: Arc<Mutex<Fault>>,
    state: Arc<Mutex<State>>,
}

impl FaultySmtp {
    pub fn start(fault: Fault) -> Self {
        Self::start_on(0, fault)
    }

    /// A server that offers PIPELINING in its EHLO reply.
    pub fn start_pipelining(fault: Fault) -> Self {
        Self::serve(0, fault, true)
    }

    /// A server offering PIPELINING on a port chosen earlier.
    pub fn start_pipelining_on(port: u16, fault: Fault) -> Self {
        Self::serve(port, fault, true)
    }

    /// A server on a port chosen earlier (for "refused, then back").
    pub fn start_on(port: u16, fault: Fault) -> Self {
        Self::serve(port, fault, false)
    }

    fn serve(port: u16, fault: Fault, pipelining: bool) -> Self {
        let listener = super::bind_on(port);
        let port = listener.local_addr().unwrap().port();
        let fault = Arc::new(Mutex::new(fault));
        let state = Arc::new(Mutex::new(State::default()));
        let (f, s) = (fault.clone(), state.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (f, s) = (f.clone(), s.clone());
                std::thread::spawn(move || {
                    let _ = session(stream, &f, &s, pipelining);
                });
            }
        });
        FaultySmtp { port, fault, state }
    }

    /// From now on, fail this way (`Fault::None` to heal).
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }

    /// The recipients of each accepted message.
    pub fn accepted(&self) -> Vec<Vec<String>> {
        self.state.lock().unwrap().accepted.clone()
    }

    /// How many transactions came pipelined (RCPT sent before MAIL's reply).
    pub fn pipelined(&self) -> usize {
        self.state.lock().unwrap().pipelined
    }

    /// How many transactions came with the content of the message before.
    pub fn ahead(&self) -> usize {
        self.state.lock().unwrap().ahead
    }

    /// How many `QUIT` lines came as a message's content.
    pub fn quit_in_data(&self) -> usize {
        self.state.lock().unwrap().quit_in_data
    }

    /// How many transactions were left unfinished, their connection closed.
    pub fn abandoned(&self) -> usize {
        self.state.lock().unwrap().abandoned
    }

    /// Waits until `n` transactions were abandoned: a session sees its
    /// connection closed on its own thread, after the client is done.
    pub fn wait_abandoned(&self, n: usize, timeout: Duration) -> bool {
        let until = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < until {
            if self.abandoned() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

/// Counts the session's transaction as abandoned when it ends, however it
/// ends (a reset may come while a reply is being written), still open.
struct Transaction<'a> {
    state: &'a Mutex<State>,
    open: bool,
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.open {
            self.state.lock().unwrap().abandoned += 1;
        }
    }
}

fn session(stream: TcpStream, fault: &Mutex<Fault>, state: &Mutex<State>, pipelining: bool) -> std::io::Result<()> {
    let mut transaction = Transaction { state, open: false };
    let mut out = stream.try_clone()?;
    let mut lines = BufReader::new(stream);
    let now = || *fault.lock().unwrap();
    if now() == Fault::Greeting421 {
        out.write_all(b"421 4.3.2 faults.test too many connections, try later\r\n")?;
        return Ok(());
    }
    // Each reply waits first under `Fault::SlowReplies`.
    let slow = || {
        if let Fault::SlowReplies(d) = now() {
            std::thread::sleep(d);
        }
    };
    slow();
    out.write_all(b"220 faults.test ESMTP\r\n")?;
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" if pipelining => {
                b"250-faults.test\r\n250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n"
            }
            "EHLO" => b"250-faults.test\r\n250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            "HELO" => b"250 faults.test\r\n",
            "AUTH" if now() == Fault::Auth535 => b"535 5.7.8 authentication credentials invalid\r\n",
            "AUTH" => b"235 2.7.0 authenticated\r\n",
            "MAIL" if now() == Fault::Mail421Once => {
                *fault.lock().unwrap() = Fault::None;
                out.write_all(b"421 4.4.2 faults.test closing idle session\r\n")?;
                return Ok(());
            }
            "MAIL" => {
                transaction.open = true;
                to.clear();
                if lines.buffer().to_ascii_uppercase().starts_with(b"RCPT") {
                    state.lock().unwrap().pipelined += 1;
                }
                b"250 2.1.0 ok\r\n"
            }
            "RCPT" if now() == Fault::Rcpt550 => b"550 5.1.1 no such mailbox\r\n",
            "RCPT" => {
                let addr = line.split(['<', '>']).nth(1).unwrap_or("").to_string();
                to.push(addr);
                if now() == Fault::Stray354AfterRcpt {
                    b"250 2.1.5 ok\r\n354 go ahead\r\n"
                } else {
                    b"250 2.1.5 ok\r\n"
                }
            }
            "DATA" => {
                slow();
                if now() == Fault::Stray250AfterData {
                    out.write_all(b"354 end with <CRLF>.<CRLF>\r\n250 2.0.0 queued\r\n")?;
                } else {
                    out.write_all(b"354 end with <CRLF>.<CRLF>\r\n")?;
                }
                if let Fault::PauseBeforeContent(d) = now() {
                    std::thread::sleep(d);
                }
                if now() == Fault::DropMidData {
                    line.clear();
                    lines.read_line(&mut line)?;
                    out.shutdown(std::net::Shutdown::Both)?;
                    return Ok(());
                }
                loop {
                    line.clear();
                    // An end of stream, or a reset: a client closing with
                    // replies unread resets the connection.
                    if !matches!(lines.read_line(&mut line), Ok(n) if n > 0) {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    if line.eq_ignore_ascii_case("QUIT\r\n") {
                        state.lock().unwrap().quit_in_data += 1;
                    }
                }
                transaction.open = false;
                if lines.buffer().to_ascii_uppercase().starts_with(b"MAIL") {
                    state.lock().unwrap().ahead += 1;
                }
                match now() {
                    Fault::Silent(d) => {
                        std::thread::sleep(d);
                        return Ok(());
                    }
                    Fault::Data451 => b"451 4.3.0 temporary local problem, try later\r\n",
                    Fault::Reply354AtEnd => b"354 go ahead\r\n",
                    Fault::GarbageAtEnd => b"99 weird\r\n",
                    Fault::Stray250AfterData => b"550 5.7.1 refused\r\n",
                    Fault::ExtraReplyAtEnd => {
                        state.lock().unwrap().accepted.push(std::mem::take(&mut to));
                        b"250 2.0.0 queued\r\n250 2.0.0 and this, which nothing asked for\r\n"
                    }
                    Fault::Data451Broken => b"451 4.3.0 queue\rfull\ttry later\r\n",
                    Fault::BareReply => {
                        state.lock().unwrap().accepted.push(std::mem::take(&mut to));
                        b"250\r\n"
                    }
                    Fault::SlowEnd { each, first, then } => {
                        let n = {
                            let mut state = state.lock().unwrap();
                            state.accepted.push(std::mem::take(&mut to));
                            state.accepted.len()
                        };
                        std::thread::sleep(if n <= first { each } else { then });
                        b"250 2.0.0 queued\r\n"
                    }
                    Fault::CloseAfterMessage => {
                        state.lock().unwrap().accepted.push(std::mem::take(&mut to));
                        out.write_all(b"250 2.0.0 queued\r\n")?;
                        out.shutdown(std::net::Shutdown::Both)?;
                        return Ok(());
                    }
                    _ => {
                        state.lock().unwrap().accepted.push(std::mem::take(&mut to));
                        b"250 2.0.0 queued\r\n"
                    }
                }
            }
            "RSET" => {
                transaction.open = false;
                b"250 2.0.0 ok\r\n"
            }
            "NOOP" => b"250 2.0.0 ok\r\n",
            "QUIT" => {
                out.write_all(b"221 2.0.0 bye\r\n")?;
                return Ok(());
            }
            _ => b"502 5.5.2 command not recognised\r\n",
        };
        slow();
        out.write_all(reply)?;
    }
}
