use std::{
    fmt::Display,
    io::{self, BufRead, BufReader, Write},
    net::{IpAddr, ToSocketAddrs},
    time::Duration,
};

#[cfg(feature = "tracing")]
use super::escape_crlf;
use super::{
    ClientCodec, MAX_RESPONSE_BYTES, MAX_RESPONSE_LINE_BYTES, NetworkStream, TlsParameters,
};
use crate::{
    address::Envelope,
    transport::smtp::{
        authentication::{Credentials, Mechanism},
        commands::{Auth, Data, Ehlo, Mail, Noop, Quit, Rcpt, Starttls},
        error,
        error::Error,
        extension::{ClientId, Extension, MailBodyParameter, MailParameter, ServerInfo},
        response::{Response, Severity, parse_response},
    },
};

/// rappel: the class of reply due to the `k`th of `n` commands of an
/// envelope (MAIL, each RCPT, DATA): 2xx, and 3xx (354) for DATA.
fn expected(k: usize, n: usize) -> Severity {
    if k + 1 == n {
        Severity::PositiveIntermediate
    } else {
        Severity::PositiveCompletion
    }
}

/// rappel: what a server sent, as an error shows it: its first 120
/// characters, without the line end.
fn shown(received: &str) -> String {
    received.trim_end().chars().take(120).collect()
}

macro_rules! try_smtp (
    ($err: expr, $client: ident) => ({
        match $err {
            Ok(val) => val,
            Err(err) => {
                $client.abort();
                return Err(From::from(err))
            },
        }
    })
);

/// Structure that implements the SMTP client
pub struct SmtpConnection {
    /// TCP stream between client and server
    /// Value is None before connection
    stream: BufReader<NetworkStream>,
    /// Panic state
    panic: bool,
    /// Information about the server
    server_info: ServerInfo,
    /// rappel: whether the message's content began to go in the last `send`.
    content_started: bool,
    /// rappel: the envelope whose MAIL, RCPT and DATA went with the last
    /// message's content, their replies not read yet (`send_then`). The
    /// server then waits for that message's content: nothing but it may be
    /// written on this connection.
    prepared: Option<Envelope>,
    /// rappel: the timeout of each read (`set_timeout`).
    timeout: Option<Duration>,
}

impl SmtpConnection {
    /// Get information about the server
    pub fn server_info(&self) -> &ServerInfo {
        &self.server_info
    }

    // FIXME add simple connect and rename this one

    /// Connects to the configured server
    ///
    /// Sends EHLO and parses server information
    pub fn connect<A: ToSocketAddrs>(
        server: A,
        timeout: Option<Duration>,
        hello_name: &ClientId,
        tls_parameters: Option<&TlsParameters>,
        local_address: Option<IpAddr>,
    ) -> Result<SmtpConnection, Error> {
        let stream = NetworkStream::connect(server, timeout, tls_parameters, local_address)?;
        let stream = BufReader::new(stream);
        let mut conn = SmtpConnection {
            stream,
            panic: false,
            content_started: false,
            prepared: None,
            server_info: ServerInfo::default(),
            timeout: None,
        };
        conn.set_timeout(timeout).map_err(error::network)?;
        // TODO log
        let _response = conn.read_response()?;

        conn.ehlo(hello_name)?;

        // Print server information
        #[cfg(feature = "tracing")]
        tracing::debug!("server {}", conn.server_info);
        Ok(conn)
    }

    pub fn send(&mut self, envelope: &Envelope, email: &[u8]) -> Result<Response, Error> {
        self.send_then(envelope, email, None)
    }

    /// rappel: as `send`, and, when the server offers PIPELINING and `next`
    /// is given, writes `next`'s MAIL, RCPT and DATA right after this
    /// message's "." (RFC 2920 §3.1: the content may be the first command of
    /// a group), so the next `send_then` for that envelope starts with their
    /// replies rather than a round trip. The reply to "." is read before
    /// this returns: this message's outcome is known, and the next one's
    /// commands deliver nothing without its content.
    pub fn send_then(
        &mut self,
        envelope: &Envelope,
        email: &[u8],
        next: Option<&Envelope>,
    ) -> Result<Response, Error> {
        self.content_started = false;
        let prepared = self.prepared.take();
        if prepared.as_ref().is_some_and(|p| p != envelope) {
            // The pool only hands a prepared connection to its envelope.
            self.abort_quietly();
            return Err(error::client("the connection was prepared for another message"));
        }
        let commands = match self.envelope_commands(envelope, !email.is_ascii(), prepared.is_some()) {
            Ok(commands) => commands,
            Err(e) => {
                if prepared.is_some() {
                    // The server waits for this message's content.
                    self.abort_quietly();
                }
                return Err(e);
            }
        };
        if prepared.is_some() {
            // Their commands went with the message before.
            self.read_replies(commands.len())?;
        } else if self.server_info().supports_feature(Extension::Pipelining) {
            // rappel: RFC 2920, MAIL, RCPT and DATA in one write, their
            // replies read in order (README.rappel.md). The first refusal is
            // the error, as lock-step would give; the connection is then
            // aborted, so a DATA the server accepted anyway never ends with
            // the "." that would deliver it.
            self.in_step()?;
            try_smtp!(self.write(commands.concat().as_bytes()), self);
            self.read_replies(commands.len())?;
        } else {
            let n = commands.len();
            for (k, command) in commands.iter().enumerate() {
                // rappel: each reply of its own class (`read_expecting`);
                // the connection is closed without QUIT on any failure, as
                // DATA's 354 may yet come and QUIT would be content.
                self.in_step()?;
                try_smtp!(self.write(command.as_bytes()), self);
                self.read_expecting(expected(k, n))?;
            }
        }

        // The next message's commands, when they can go with this content.
        let then = next
            .filter(|_| self.server_info().supports_feature(Extension::Pipelining))
            .and_then(|n| Some((n, self.envelope_commands(n, false, true).ok()?.concat())));
        let result = try_smtp!(self.message_then(email, then), self);
        Ok(result)
    }

    /// rappel: reads the replies to `n` pipelined commands ending with
    /// DATA. The first refusal, or a failure to read, is the error, and the
    /// connection is closed without QUIT: the server may have answered DATA
    /// with 354 all the same, and would take QUIT as content.
    fn read_replies(&mut self, n: usize) -> Result<(), Error> {
        for k in 0..n {
            self.read_expecting(expected(k, n))?;
        }
        Ok(())
    }

    /// rappel: reads the reply to the `k`th command of an envelope's MAIL,
    /// RCPT and DATA (`expected`). A refusal is the error; a positive reply
    /// of another class (a 250 where DATA's 354 is due: a server that sent
    /// a line too many earlier, its replies now out of step with the
    /// commands) is an error too, so no content goes on a reply meant for
    /// another command. Either way the connection is closed without QUIT:
    /// the server may be waiting for content.
    fn read_expecting(&mut self, severity: Severity) -> Result<Response, Error> {
        match self.read_response() {
            Ok(response) if response.code().severity == severity => Ok(response),
            Ok(response) => {
                self.abort_quietly();
                Err(error::response(format!(
                    "the server answered {} where a {}xx reply was due: its replies are out of step with \
                     the commands; the connection is closed",
                    response.code(),
                    severity
                )))
            }
            Err(e) => {
                self.abort_quietly();
                Err(e)
            }
        }
    }

    /// rappel: closes the connection without a word (no QUIT): the
    /// server may be waiting for a message's content.
    fn abort_quietly(&mut self) {
        self.panic = true;
        self.abort();
    }

    /// rappel: the MAIL, every RCPT and the DATA command of `envelope`, in
    /// order, each with its CRLF. `eight_bit`: the content is not ASCII; `ahead`: the
    /// content is not known yet, so the body is declared 8BITMIME whenever
    /// the server takes it (RFC 6152 allows it for 7-bit content too).
    /// Errors: the envelope or content needs an extension the server does
    /// not offer.
    fn envelope_commands(&self, envelope: &Envelope, eight_bit: bool, ahead: bool) -> Result<Vec<String>, Error> {
        let mut mail_options = vec![];

        // Internationalization handling
        //
        // * 8BITMIME: https://tools.ietf.org/html/rfc6152
        // * SMTPUTF8: https://tools.ietf.org/html/rfc653

        // Check for non-ascii addresses and use the SMTPUTF8 option if any.
        if envelope.has_non_ascii_addresses() {
            if !self.server_info().supports_feature(Extension::SmtpUtfEight) {
                // don't try to send non-ascii addresses (per RFC)
                return Err(error::client(
                    "Envelope contains non-ascii chars but server does not support SMTPUTF8",
                ));
            }
            mail_options.push(MailParameter::SmtpUtfEight);
        }

        // Check for non-ascii content in the message
        let eight_bit_server = self.server_info().supports_feature(Extension::EightBitMime);
        if eight_bit && !eight_bit_server {
            return Err(error::client(
                "Message contains non-ascii chars but server does not support 8BITMIME",
            ));
        }
        if eight_bit || (ahead && eight_bit_server) {
            mail_options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }

        let mut commands = vec![Mail::new(envelope.from().cloned(), mail_options).to_string()];
        for to_address in envelope.to() {
            commands.push(Rcpt::new(to_address.clone(), vec![]).to_string());
        }
        commands.push(Data.to_string());
        Ok(commands)
    }

    /// rappel: whether the server waits for a message's content
    /// (`send_then` wrote its commands): only that message may use it.
    pub(crate) fn prepared_for(&self) -> Option<&Envelope> {
        self.prepared.as_ref()
    }

    /// rappel: whether the last `send` began to send the message's content.
    pub(crate) fn content_started(&self) -> bool {
        self.content_started
    }

    pub fn has_broken(&self) -> bool {
        self.panic
    }

    pub fn can_starttls(&self) -> bool {
        !self.is_encrypted() && self.server_info.supports_feature(Extension::StartTls)
    }

    #[allow(unused_variables)]
    pub fn starttls(
        &mut self,
        tls_parameters: &TlsParameters,
        hello_name: &ClientId,
    ) -> Result<(), Error> {
        if self.server_info.supports_feature(Extension::StartTls) {
            #[cfg(any(feature = "native-tls", feature = "rustls", feature = "boring-tls"))]
            {
                try_smtp!(self.command(Starttls), self);
                self.stream.get_mut().upgrade_tls(tls_parameters)?;
                #[cfg(feature = "tracing")]
                tracing::debug!("connection encrypted");
                // Send EHLO again
                try_smtp!(self.ehlo(hello_name), self);
                Ok(())
            }
            #[cfg(not(any(feature = "native-tls", feature = "rustls", feature = "boring-tls")))]
            // This should never happen as `Tls` can only be created
            // when a TLS library is enabled
            unreachable!("TLS support required but not supported");
        } else {
            Err(error::client("STARTTLS is not supported on this server"))
        }
    }

    /// Send EHLO and update server info
    fn ehlo(&mut self, hello_name: &ClientId) -> Result<(), Error> {
        let ehlo_response = try_smtp!(self.command(Ehlo::new(hello_name.clone())), self);
        self.server_info = try_smtp!(ServerInfo::from_response(&ehlo_response), self);
        Ok(())
    }

    pub fn quit(&mut self) -> Result<Response, Error> {
        Ok(try_smtp!(self.command(Quit), self))
    }

    pub fn abort(&mut self) {
        // Only try to quit if we are not already broken. rappel: nor when
        // the server may be waiting for a prepared message's content: QUIT
        // would be taken as content, and its reply waited for until the
        // timeout. Closing without the "." delivers nothing.
        if self.prepared.take().is_some() {
            self.panic = true;
        }
        if !self.panic {
            self.panic = true;
            let _ = self.command(Quit);
        }
        let _ = self.stream.get_mut().shutdown(std::net::Shutdown::Both);
    }

    /// Sets the underlying stream
    pub fn set_stream(&mut self, stream: NetworkStream) {
        self.stream = BufReader::new(stream);
    }

    /// Tells if the underlying stream is currently encrypted
    pub fn is_encrypted(&self) -> bool {
        self.stream.get_ref().is_encrypted()
    }

    /// Set timeout
    pub fn set_timeout(&mut self, duration: Option<Duration>) -> io::Result<()> {
        self.timeout = duration;
        self.stream.get_mut().set_read_timeout(duration)?;
        self.stream.get_mut().set_write_timeout(duration)
    }

    /// Checks if the server is connected using the NOOP SMTP command
    pub fn test_connected(&mut self) -> bool {
        // rappel: a NOOP would be taken as a prepared message's content.
        self.prepared.is_none() && self.command(Noop).is_ok()
    }

    /// Sends an AUTH command with the given mechanism, and handles the challenge if needed
    pub fn auth(
        &mut self,
        mechanisms: &[Mechanism],
        credentials: &Credentials,
    ) -> Result<Response, Error> {
        let mechanism = self
            .server_info
            .get_auth_mechanism(mechanisms)
            .ok_or_else(|| error::client("No compatible authentication mechanism was found"))?;

        // Limit challenges to avoid blocking
        let mut challenges = 10;
        let mut response = self.command(Auth::new(mechanism, credentials.clone(), None)?)?;

        while challenges > 0 && response.has_code(334) {
            challenges -= 1;
            response = try_smtp!(
                self.command(Auth::new_from_response(
                    mechanism,
                    credentials.clone(),
                    &response,
                )?),
                self
            );
        }

        if challenges == 0 {
            Err(error::response("Unexpected number of challenges"))
        } else {
            Ok(response)
        }
    }

    /// Sends the message content
    pub fn message(&mut self, message: &[u8]) -> Result<Response, Error> {
        self.message_then(message, None)
    }

    /// rappel: as `message`; `next` (an envelope and its MAIL, RCPT and
    /// DATA commands) goes after the "." in the same write, and the
    /// connection is then prepared for that envelope (`send_then`).
    fn message_then(&mut self, message: &[u8], next: Option<(&Envelope, String)>) -> Result<Response, Error> {
        self.content_started = true;
        // rappel: a message under 1 MiB goes with the "." that ends it in one
        // write. A larger one goes as lettre sends it: its encoded copy is
        // sized to it, where one more byte would double the allocation; no
        // next message's commands go with it.
        self.in_step()?;
        if message.len() >= 1 << 20 {
            return self.message_iter(std::iter::once(message));
        }
        self.time_for_the_end()?;
        let after = next.as_ref().map_or("", |(_, commands)| commands.as_str());
        let mut codec = ClientCodec::new();
        let mut out_buf = Vec::with_capacity(message.len() + 64 + after.len());
        codec.encode(message, &mut out_buf);
        out_buf.extend_from_slice(b"\r\n.\r\n");
        out_buf.extend_from_slice(after.as_bytes());
        self.write(out_buf.as_slice())?;
        let ahead = next.is_some();
        self.prepared = next.map(|(envelope, _)| envelope.clone());
        let response = self.read_completion()?;
        if !ahead && !self.stream.buffer().is_empty() {
            // More than one reply to the ".": the connection is out of step
            // and is not used again (the first reply is the outcome).
            self.abort_quietly();
        }
        Ok(response)
    }

    /// rappel: nothing may be waiting unread before a command or a
    /// message's content goes: every reply so far was read, and a server
    /// speaks only when spoken to. A line waiting (a reply sent early, or
    /// one too many) means its replies are out of step with the commands:
    /// the next reply read would be taken for another command's, and a
    /// message could go on a reply meant for something else. The
    /// connection is closed without a word.
    fn in_step(&mut self) -> Result<(), Error> {
        if self.stream.buffer().is_empty() {
            return Ok(());
        }
        let shown = shown(&String::from_utf8_lossy(self.stream.buffer()));
        self.abort_quietly();
        Err(error::response(format!(
            "the server sent {shown:?}, which no command asked for: its replies are out of step with the \
             commands; the connection is closed"
        )))
    }

    /// rappel: whether a whole read timeout is left before the thread's
    /// deadline (`net::set_deadline`) to hear the reply to the "." about to
    /// go. If not, the "." does not go and the connection is closed without
    /// a word: the server discards the message, which is tried again, where
    /// a "." whose reply the deadline cut would leave it delivered and
    /// recorded failed, then sent twice.
    fn time_for_the_end(&mut self) -> Result<(), Error> {
        let (Some(left), Some(timeout)) = (super::net::time_left(), self.timeout) else {
            return Ok(());
        };
        if left >= timeout {
            return Ok(());
        }
        self.abort_quietly();
        Err(error::network(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "{} ms of the exchange's deadline left, less than a reply's timeout: the message's end was not \
                 sent (the server answers too slowly)",
                left.as_millis()
            ),
        )))
    }

    /// rappel: the reply to a message's end. Only a completion (2xx) is a
    /// delivery (RFC 5321 §4.1.1.4: "." is answered 250, or refused). Any
    /// other positive reply, a 354 say, is a server out of step with the
    /// client: an error, and the connection is closed without QUIT, which
    /// such a server could take as content.
    ///
    /// The reply may take until the thread's deadline rather than one read
    /// timeout (RFC 5321 §4.5.3.2.6 gives the server ten minutes here): the
    /// content may still sit in the socket's buffers when the last write
    /// returns, and a server reading it slowly answers once it has read the
    /// ".". Given up after one timeout, the message was delivered all the
    /// same, recorded failed, and sent twice.
    fn read_completion(&mut self) -> Result<Response, Error> {
        self.stream.get_mut().wait_until_deadline(true);
        let read = self.read_response();
        self.stream.get_mut().wait_until_deadline(false);
        let response = read?;
        if response.code().severity == Severity::PositiveCompletion {
            return Ok(response);
        }
        self.abort_quietly();
        Err(error::response(format!(
            "the server answered the end of the message with {}, not a completion (2xx)",
            response.code()
        )))
    }

    /// Sends the message content by consuming an iterator that in its whole represents a message.
    pub fn message_iter<I, B>(&mut self, message: I) -> Result<Response, Error>
    where
        I: Iterator<Item = B>,
        B: AsRef<[u8]>,
    {
        self.content_started = true;
        let mut codec = ClientCodec::new();
        for message_part in message {
            let message_part = message_part.as_ref();
            let mut out_buf = Vec::with_capacity(message_part.len());
            codec.encode(message_part, &mut out_buf);
            self.write(out_buf.as_slice())?;
        }
        self.time_for_the_end()?;
        self.write(b"\r\n.\r\n")?;

        self.read_completion()
    }

    /// Sends an SMTP command
    pub fn command<C: Display>(&mut self, command: C) -> Result<Response, Error> {
        self.write(command.to_string().as_bytes())?;
        self.read_response()
    }

    /// Writes a string to the server
    fn write(&mut self, string: &[u8]) -> Result<(), Error> {
        self.stream
            .get_mut()
            .write_all(string)
            .map_err(error::network)?;
        self.stream.get_mut().flush().map_err(error::network)?;

        #[cfg(feature = "tracing")]
        tracing::debug!("Wrote: {}", escape_crlf(&String::from_utf8_lossy(string)));
        Ok(())
    }

    /// Gets the SMTP response
    pub fn read_response(&mut self) -> Result<Response, Error> {
        let mut buffer = String::with_capacity(100);
        let mut pre = 0;

        // rappel: each line is read with a bound, so a server that never ends
        // a line cannot make the buffer grow past it (README.rappel.md).
        while io::Read::take(&mut self.stream, MAX_RESPONSE_LINE_BYTES as u64 + 1)
            .read_line(&mut buffer)
            .map_err(error::network)?
            > 0
        {
            if buffer.len() - pre > MAX_RESPONSE_LINE_BYTES {
                return Err(error::response("SMTP response line too long"));
            }
            if buffer.len() > MAX_RESPONSE_BYTES {
                return Err(error::response("SMTP response too large"));
            }
            pre = buffer.len();

            #[cfg(feature = "tracing")]
            tracing::debug!("<< {}", escape_crlf(&buffer));
            match parse_response(&buffer) {
                Ok((_remaining, response)) => {
                    return if response.is_positive() {
                        Ok(response)
                    } else {
                        Err(error::code_from_response(&response))
                    };
                }
                // rappel: said with the reply as it came (its first 120
                // characters), not nom's parser position.
                Err(nom::Err::Failure(_) | nom::Err::Error(_)) => {
                    let shown = shown(&buffer);
                    return Err(error::response(format!("the server's reply is not an SMTP reply: {shown:?}")));
                }
                Err(nom::Err::Incomplete(_)) => { /* read more */ }
            }
        }

        Err(error::response("incomplete response"))
    }

    /// The X509 certificate of the server (DER encoded)
    #[cfg(any(feature = "native-tls", feature = "rustls", feature = "boring-tls"))]
    #[cfg_attr(
        docsrs,
        doc(cfg(any(feature = "native-tls", feature = "rustls", feature = "boring-tls")))
    )]
    pub fn peer_certificate(&self) -> Result<Vec<u8>, Error> {
        self.stream.get_ref().peer_certificate()
    }

    /// Currently this is only avaialable when using Boring TLS and
    /// returns the result of the verification of the TLS certificate
    /// presented by the peer, if any. Only the last error encountered
    /// during verification is presented.
    /// It can be useful when you don't want to fail outright the TLS
    /// negotiation, for example when a self-signed certificate is
    /// encountered, but still want to record metrics or log the fact.
    /// When using DANE verification, the PKI root of trust moves from
    /// the CAs to DNS, so self-signed certificates are permitted as long
    /// as the TLSA records match the leaf or issuer certificates.
    /// It cannot be called on non Boring TLS streams.
    #[cfg(feature = "boring-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "boring-tls")))]
    pub fn tls_verify_result(&self) -> Result<(), Error> {
        self.stream.get_ref().tls_verify_result()
    }

    /// All the X509 certificates of the chain (DER encoded)
    #[cfg(any(feature = "rustls", feature = "boring-tls"))]
    #[cfg_attr(docsrs, doc(cfg(any(feature = "rustls", feature = "boring-tls"))))]
    pub fn certificate_chain(&self) -> Result<Vec<Vec<u8>>, Error> {
        self.stream.get_ref().certificate_chain()
    }
}
