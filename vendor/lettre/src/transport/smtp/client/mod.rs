//! SMTP client
//!
//! `SmtpConnection` allows manually sending SMTP commands.
//!
//! ```rust,no_run
//! # use std::error::Error;
//!
//! # #[cfg(feature = "smtp-transport")]
//! # fn main() -> Result<(), Box<dyn Error>> {
//! use lettre::transport::smtp::{
//!     SMTP_PORT, client::SmtpConnection, commands::*, extension::ClientId,
//! };
//!
//! let hello = ClientId::Domain("my_hostname".to_owned());
//! let mut client = SmtpConnection::connect(&("localhost", SMTP_PORT), None, &hello, None, None)?;
//! client.command(Mail::new(Some("user@example.com".parse()?), vec![]))?;
//! client.command(Rcpt::new("user@example.org".parse()?, vec![]))?;
//! client.command(Data)?;
//! client.message("Test email".as_bytes())?;
//! client.command(Quit)?;
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "serde")]
use std::fmt::Debug;

#[cfg(any(feature = "tokio1", feature = "async-std1"))]
pub use self::async_connection::AsyncSmtpConnection;
#[cfg(any(feature = "tokio1", feature = "async-std1"))]
#[allow(deprecated)]
pub use self::async_net::AsyncNetworkStream;
#[cfg(feature = "tokio1")]
pub use self::async_net::AsyncTokioStream;
use self::net::NetworkStream;
/// rappel: a total deadline for this thread's SMTP exchanges (README.rappel.md).
pub use self::net::set_deadline;
#[cfg(any(feature = "native-tls", feature = "rustls", feature = "boring-tls"))]
pub(super) use self::tls::InnerTlsParameters;
#[cfg(any(feature = "native-tls", feature = "rustls", feature = "boring-tls"))]
pub use self::tls::TlsVersion;
pub use self::{
    connection::SmtpConnection,
    tls::{Certificate, CertificateStore, Identity, Tls, TlsParameters, TlsParametersBuilder},
};

#[cfg(any(feature = "tokio1", feature = "async-std1"))]
mod async_connection;
#[cfg(any(feature = "tokio1", feature = "async-std1"))]
mod async_net;
mod connection;
mod net;
mod tls;

/// Total bytes cap on an SMTP response (Postfix `smtp_response_limit`).
pub(super) const MAX_RESPONSE_BYTES: usize = 100_000;

/// Single-line byte cap (Postfix `line_length_limit`).
pub(super) const MAX_RESPONSE_LINE_BYTES: usize = 1000;

/// The codec used for transparency
#[derive(Debug)]
struct ClientCodec {
    status: CodecStatus,
}

impl ClientCodec {
    /// Creates a new client codec
    pub(crate) fn new() -> Self {
        Self {
            status: CodecStatus::StartOfNewLine,
        }
    }

    /// Adds transparency
    ///
    /// rappel: the bytes between line ends are copied as one slice (the
    /// next `\r` found by `memchr`), not pushed one at a time; the state
    /// machine below sees only each line end and the byte after it.
    fn encode(&mut self, frame: &[u8], buf: &mut Vec<u8>) {
        buf.reserve(frame.len());
        let mut rest = frame;
        while let Some((&b, tail)) = rest.split_first() {
            if let CodecStatus::MiddleOfLine = self.status {
                let run = memchr::memchr(b'\r', rest).unwrap_or(rest.len());
                if run > 0 {
                    buf.extend_from_slice(&rest[..run]);
                    rest = &rest[run..];
                    continue;
                }
            }
            buf.push(b);
            match (b, self.status) {
                (b'\r', _) => {
                    self.status = CodecStatus::StartingNewLine;
                }
                (b'\n', CodecStatus::StartingNewLine) => {
                    self.status = CodecStatus::StartOfNewLine;
                }
                (_, CodecStatus::StartingNewLine) => {
                    self.status = CodecStatus::MiddleOfLine;
                }
                (b'.', CodecStatus::StartOfNewLine) => {
                    self.status = CodecStatus::MiddleOfLine;
                    buf.push(b'.');
                }
                (_, CodecStatus::StartOfNewLine) => {
                    self.status = CodecStatus::MiddleOfLine;
                }
                _ => {}
            }
            rest = tail;
        }
    }
}

#[derive(Debug, Copy, Clone)]
#[allow(clippy::enum_variant_names)]
enum CodecStatus {
    /// We are past the first character of the current line
    MiddleOfLine,
    /// We just read a `\r` character
    StartingNewLine,
    /// We are at the start of a new line
    StartOfNewLine,
}

/// Returns the string replacing all the CRLF with "\<CRLF\>"
/// Used for debug displays
#[cfg(feature = "tracing")]
pub(super) fn escape_crlf(string: &str) -> String {
    string.replace("\r\n", "<CRLF>")
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn test_codec() {
        let mut buf = Vec::new();
        let mut codec = ClientCodec::new();

        codec.encode(b".\r\n", &mut buf);
        codec.encode(b"test\r\n", &mut buf);
        codec.encode(b"test\r\n\r\n", &mut buf);
        codec.encode(b".\r\n", &mut buf);
        codec.encode(b"\r\ntest", &mut buf);
        codec.encode(b"te\r\n.\r\nst", &mut buf);
        codec.encode(b"test", &mut buf);
        codec.encode(b"test.", &mut buf);
        codec.encode(b"test\n", &mut buf);
        codec.encode(b".test\n", &mut buf);
        codec.encode(b"test", &mut buf);
        codec.encode(b"test", &mut buf);
        codec.encode(b"test\r\n", &mut buf);
        codec.encode(b".test\r\n", &mut buf);
        codec.encode(b"test.\r\n", &mut buf);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "..\r\ntest\r\ntest\r\n\r\n..\r\n\r\ntestte\r\n..\r\nsttesttest.test\n.test\ntesttesttest\r\n..test\r\ntest.\r\n"
        );
    }

    /// rappel: `encode` against the byte-at-a-time codec it replaced, on
    /// every string of up to seven bytes over `\r`, `\n`, `.` and `a`, cut
    /// into two frames at every point.
    #[test]
    fn encode_matches_the_byte_at_a_time_codec() {
        fn reference(frames: &[&[u8]]) -> Vec<u8> {
            let (mut out, mut status) = (Vec::new(), CodecStatus::StartOfNewLine);
            for &b in frames.concat().iter() {
                out.push(b);
                status = match (b, status) {
                    (b'\r', _) => CodecStatus::StartingNewLine,
                    (b'\n', CodecStatus::StartingNewLine) => CodecStatus::StartOfNewLine,
                    (b'.', CodecStatus::StartOfNewLine) => {
                        out.push(b'.');
                        CodecStatus::MiddleOfLine
                    }
                    (_, CodecStatus::StartingNewLine | CodecStatus::StartOfNewLine) => CodecStatus::MiddleOfLine,
                    (_, s) => s,
                };
            }
            out
        }
        let alphabet = [b'\r', b'\n', b'.', b'a'];
        for len in 0..=7u32 {
            for mut n in 0..4usize.pow(len) {
                let mut input = Vec::new();
                for _ in 0..len {
                    input.push(alphabet[n % 4]);
                    n /= 4;
                }
                for cut in 0..=input.len() {
                    let (a, b) = input.split_at(cut);
                    let (mut buf, mut codec) = (Vec::new(), ClientCodec::new());
                    codec.encode(a, &mut buf);
                    codec.encode(b, &mut buf);
                    assert_eq!(buf, reference(&[a, b]), "{input:?} cut at {cut}");
                }
            }
        }
    }

    #[test]
    #[cfg(feature = "tracing")]
    fn test_escape_crlf() {
        assert_eq!(escape_crlf("\r\n"), "<CRLF>");
        assert_eq!(escape_crlf("EHLO my_name\r\n"), "EHLO my_name<CRLF>");
        assert_eq!(
            escape_crlf("EHLO my_name\r\nSIZE 42\r\n"),
            "EHLO my_name<CRLF>SIZE 42<CRLF>"
        );
    }
}
