//! Building an email: headers for each recipient, and a MIME body (text, HTML,
//! attachment) made once. A body with an attachment is shared by every
//! recipient of the same content, so a large file is read and encoded once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use lettre::address::Envelope;
use lettre::message::header::{self, ContentTransferEncoding, ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Attachment, Body, Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};
use sha2::{Digest, Sha256};

use crate::channels::{Outgoing, SendError};

/// Shared bodies kept at most this large in total (the newest always stays).
const CACHE_BYTES: usize = 48 * 1024 * 1024;

/// Attachments above this size are built with nothing else cached.
pub const LARGE: u64 = 2 * 1024 * 1024;

/// Room kept before a shared body for one recipient's headers, so a large
/// message is sent without copying its body.
const HEADROOM: usize = 16 * 1024;

/// The hash of a content, its size, and its formatted MIME body (after `HEADROOM` bytes).
type Cached = ([u8; 32], usize, Arc<Mutex<Vec<u8>>>);

/// Formatted MIME bodies with attachments, by content.
#[derive(Default)]
pub struct Bodies {
    cache: Mutex<VecDeque<Cached>>,
}

impl Bodies {
    fn get_or_build(&self, m: &Outgoing<'_>) -> Result<Arc<Mutex<Vec<u8>>>, SendError> {
        let key = content_key(m);
        if let Some((_, _, body)) = self.lock().iter().find(|(k, _, _)| *k == key) {
            return Ok(body.clone());
        }
        if m.attachment
            .as_ref()
            .is_some_and(|a| std::fs::metadata(a.path).is_ok_and(|meta| meta.len() > LARGE))
        {
            // Room for the large body first: never hold two at once.
            self.lock().clear();
        }
        let mut padded = vec![0u8; HEADROOM];
        padded.extend_from_slice(&mime_body(m)?);
        let size = padded.len();
        let body = Arc::new(Mutex::new(padded));
        let mut cache = self.lock();
        cache.push_back((key, size, body.clone()));
        while cache.len() > 1 && cache.iter().map(|(_, size, _)| size).sum::<usize>() > CACHE_BYTES {
            cache.pop_front();
        }
        Ok(body)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Cached>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The SMTP envelope of a message from `from` to `to`, or to `redirect_to`
/// when set. Errors: lettre's (no recipient).
fn envelope_to(from: &Mailbox, redirect_to: Option<&Address>, to: &Address) -> Result<Envelope, lettre::error::Error> {
    Envelope::new(Some(from.email.clone()), vec![redirect_to.unwrap_or(to).clone()])
}

/// The envelope a message to `recipient` (an address as `Outgoing` holds
/// it) gets, as [`build_and`] makes it; `None` when it is not an address.
pub fn envelope(from: &Mailbox, redirect_to: Option<&Address>, recipient: &str) -> Option<Envelope> {
    let to: Address = recipient.trim().parse().ok()?;
    envelope_to(from, redirect_to, &to).ok()
}

/// Builds the message for one recipient and hands it to `send` with its
/// envelope and Message-ID. `large`: sends are serialised by the caller, so
/// the shared body is sent in place, its headroom holding this recipient's
/// headers.
pub fn build_and<T>(
    from: &Mailbox,
    redirect_to: Option<&Address>,
    m: &Outgoing<'_>,
    wall: DateTime<Utc>,
    bodies: &Bodies,
    large: bool,
    send: impl FnOnce(&Envelope, &[u8], &str) -> Result<T, SendError>,
) -> Result<T, SendError> {
    let to: Address = m
        .recipient
        .trim()
        .parse()
        .map_err(|e| SendError::Permanent(format!("invalid email address {:?}: {e}", m.recipient)))?;
    let message_id = message_id(m.dedupe_key, from.email.domain());
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(m.subject)
        .message_id(Some(message_id.clone()))
        .date(SystemTime::from(wall))
        .header(RappelKind(m.kind.to_string()))
        .header(header::MIME_VERSION_1_0);
    // The envelope is given, not parsed back out of the headers just written.
    let envelope = envelope_to(from, redirect_to, &to)
        .map_err(|e| SendError::Permanent(format!("cannot build the message: {e}")))?;
    builder = match redirect_to {
        Some(redirect) => builder
            .to(Mailbox::new(None, redirect.clone()))
            .header(OriginalTo(to.to_string())),
        None => builder.to(Mailbox::new(None, to)),
    }
    .envelope(envelope);
    let headers_only = builder
        .body(Vec::new())
        .map_err(|e| SendError::Permanent(format!("cannot build the message: {e}")))?;
    let mut headers = headers_only.headers().clone();
    headers.remove::<ContentTransferEncoding>();
    headers.remove::<ContentType>();
    let head = headers.to_string();
    let envelope = headers_only.envelope();
    if m.attachment.is_none() {
        let body = mime_body(m)?;
        return send(envelope, &concat(head.as_bytes(), &body), &message_id);
    }
    let shared = bodies.get_or_build(m)?;
    let mut buf = shared.lock().unwrap_or_else(|e| e.into_inner());
    if large && head.len() <= HEADROOM {
        let start = HEADROOM - head.len();
        buf[start..HEADROOM].copy_from_slice(head.as_bytes());
        return send(envelope, &buf[start..], &message_id);
    }
    let bytes = concat(head.as_bytes(), &buf[HEADROOM..]);
    drop(buf);
    send(envelope, &bytes, &message_id)
}

fn concat(head: &[u8], body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(head.len() + body.len());
    bytes.extend_from_slice(head);
    bytes.extend_from_slice(body);
    bytes
}

/// The MIME part: text (and HTML) alternatives, plus the attachment.
fn mime_body(m: &Outgoing<'_>) -> Result<Vec<u8>, SendError> {
    let text = SinglePart::builder().header(ContentType::TEXT_PLAIN).body(crlf(m.body));
    let html = m
        .html
        .map(|h| SinglePart::builder().header(ContentType::TEXT_HTML).body(crlf(h)));
    let Some(a) = &m.attachment else {
        return Ok(match html {
            Some(html) => MultiPart::alternative().singlepart(text).singlepart(html).formatted(),
            None => text.formatted(),
        });
    };
    let content = read_attachment(a.path)?;
    let mime = ContentType::parse(a.mime).unwrap_or(
        ContentType::parse("application/octet-stream")
            .map_err(|e| SendError::Permanent(format!("attachment type: {e}")))?,
    );
    // Always base64, whatever the file holds: a text file may have bare LF
    // line endings, which 7bit would put inside DATA as they are, and strict
    // servers refuse them (Exchange 550 5.6.11, qmail 451); base64 carries
    // every byte intact.
    let content = Body::new_with_encoding(content, ContentTransferEncoding::Base64)
        .map_err(|_| SendError::Permanent(format!("attachment {} cannot be encoded", a.path)))?;
    let file = Attachment::new(a.name.to_string()).body(content, mime);
    let mixed = match html {
        Some(html) => MultiPart::mixed().multipart(MultiPart::alternative().singlepart(text).singlepart(html)),
        None => MultiPart::mixed().singlepart(text),
    };
    Ok(mixed.singlepart(file).formatted())
}

/// Reads a file to attach, checked as it is opened, on every attempt: the
/// path stored at planning is the file's real path (inside `attachments_dir`
/// for a stored report); if it, or a folder on its way, was replaced by a
/// symbolic link since, the real path differs and nothing is read, so a file
/// outside the folder is never mailed. The last component is opened without
/// following a link, and the file opened must be the one checked.
fn read_attachment(path: &str) -> Result<Vec<u8>, SendError> {
    use std::io::Read;
    let refused = |why: String| SendError::Permanent(format!("attachment {path} {why}"));
    let real = std::fs::canonicalize(path).map_err(|e| refused(format!("cannot be read: {e}")))?;
    if real != std::path::Path::new(path) {
        return Err(refused(format!(
            "now leads through a symbolic link to {}: not sent",
            real.display()
        )));
    }
    let mut file = crate::files::open_regular(crate::files::no_follow().read(true), &real)
        .map_err(|e| refused(format!("cannot be opened without following a link: {e}")))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let (opened, checked) = (file.metadata(), std::fs::metadata(&real));
        if let (Ok(o), Ok(c)) = (opened, checked)
            && (o.dev(), o.ino()) != (c.dev(), c.ino())
        {
            return Err(refused("changed while it was opened: not sent".into()));
        }
    }
    let mut content = Vec::new();
    file.read_to_end(&mut content)
        .map_err(|e| refused(format!("cannot be read: {e}")))?;
    Ok(content)
}

fn content_key(m: &Outgoing<'_>) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [
        m.body,
        m.html.unwrap_or(""),
        m.attachment.as_ref().map_or("", |a| a.path),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

/// CRLF line endings, in one pass. lettre converts bare LF itself, but by
/// inserting into the string once per line, which is quadratic: a digest of
/// thousands of lines would take most of a run.
fn crlf(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 32);
    let mut from = 0;
    for (at, _) in s.match_indices('\n') {
        if !s[..at].ends_with('\r') {
            out.push_str(&s[from..at]);
            out.push('\r');
            from = at;
        }
    }
    out.push_str(&s[from..]);
    out
}

/// `<hash of the dedupe key@sender domain>`: stable across retries.
pub fn message_id(dedupe_key: &str, domain: &str) -> String {
    format!("<{}@{domain}>", short_hash(dedupe_key))
}

pub fn short_hash(s: &str) -> String {
    let digest = Sha256::digest(s.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// `X-Rappel-Kind`, so filters and support can tell messages apart.
#[derive(Clone)]
struct RappelKind(String);

/// `X-Rappel-Original-To`, set when `redirect_to` diverts a message.
#[derive(Clone)]
struct OriginalTo(String);

macro_rules! text_header {
    ($ty:ident, $name:literal) => {
        impl Header for $ty {
            fn name() -> HeaderName {
                HeaderName::new_from_ascii_str($name)
            }
            fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
                Ok($ty(s.to_string()))
            }
            fn display(&self) -> HeaderValue {
                HeaderValue::new(Self::name(), self.0.clone())
            }
        }
    };
}
text_header!(RappelKind, "X-Rappel-Kind");
text_header!(OriginalTo, "X-Rappel-Original-To");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_converts_bare_line_feeds_only() {
        assert_eq!(crlf("a\nb\r\nc\n\n"), "a\r\nb\r\nc\r\n\r\n");
        assert_eq!(crlf("\nx"), "\r\nx");
        assert_eq!(
            crlf("é\nà\r\n\n€"),
            "é\r\nà\r\n\r\n€",
            "between characters of any width"
        );
        assert_eq!(crlf("\r"), "\r");
    }

    #[test]
    fn message_id_is_stable_and_per_key() {
        assert_eq!(message_id("k1", "example.com"), message_id("k1", "example.com"));
        assert_ne!(message_id("k1", "example.com"), message_id("k2", "example.com"));
        assert!(message_id("k1", "example.com").ends_with("@example.com>"));
    }

    #[test]
    fn spliced_message_matches_what_lettre_writes() {
        let from: Mailbox = "Rappel <r@example.com>".parse().unwrap();
        let m = Outgoing {
            kind: "test",
            dedupe_key: "k",
            recipient: "a@example.com",
            subject: "Sujet accentué",
            body: "ligne 1\nligne 2\n",
            html: Some("<p>x</p>"),
            attachment: None,
            payload: None,
            deadline: None,
            then: None,
        };
        let wall = DateTime::parse_from_rfc3339("2026-03-10T07:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let bytes = build_and(&from, None, &m, wall, &Bodies::default(), false, |_, b, _| {
            Ok(b.to_vec())
        })
        .unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let (head, _) = text
            .split_once("Content-Type: multipart/alternative;")
            .expect("the body's type");
        assert!(
            head.contains("MIME-Version: 1.0\r\n") && head.contains("To: a@example.com\r\n"),
            "{text}"
        );
        assert!(
            !head.contains("Content-Transfer-Encoding"),
            "only the parts have one: {text}"
        );
        assert!(head.contains("Subject: Sujet =?utf-8?"), "{text}");
        assert!(
            !head.contains("\r\n\r\n"),
            "no blank line before the body's headers: {text}"
        );
    }
}
