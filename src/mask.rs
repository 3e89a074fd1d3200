//! Secrets never leave (DESIGN §1.7), in any encoding a server might echo
//! them back in. Every secret rappel reads is registered here with the forms
//! it takes on the wire (the credentials of an `Authorization: Basic`
//! header, SMTP `AUTH PLAIN`/`LOGIN` blobs), and each form is expanded into
//! the encodings a provider's answer may carry: as is, JSON-escaped (`\/`,
//! `\u00XX`), percent-encoded, base64 (standard and URL-safe, padded or
//! not). Any piece of ten characters or more of one is masked too (a secret
//! echoed cut short). [`mask`] replaces every one with `***`; the logger, the recorded
//! errors (`last_error`, `sync_error`, `rappel_job_runs.error`) and every summary
//! pass through it.

use std::sync::RwLock;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

/// What replaces a secret.
pub const MASK: &str = "***";

/// Shorter forms are not masked: masking "a" would shred every message.
const MIN_LEN: usize = 4;

/// Every form of every secret, whitespace and control characters left out
/// (`skipped`), as `mask_spaced` looks for them; longest first.
static FORMS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// A piece of a secret this long or longer is masked wherever it stands
/// (in characters, whitespace and control characters left out): a server
/// that echoes a secret cut short (an AUTH blob truncated to its first 40
/// characters) gives most of it away otherwise.
const PIECE: usize = 10;

/// Every run of `PIECE` characters of every form (whitespace and control
/// characters left out), made as secrets are registered.
static PIECES: RwLock<Option<std::collections::HashSet<String>>> = RwLock::new(None);

/// Registers a secret as it is written (a token, a password).
pub fn register(secret: &str) {
    let mut forms = expand(secret);
    for b64 in base64_forms(secret.as_bytes()) {
        forms.extend(expand(&b64));
    }
    forms.extend(shifted_base64(secret.as_bytes()));
    add(forms);
}

/// The base64 of `bytes` where they follow one or two other bytes (`user:`
/// before a password, any blob holding it): base64 works in groups of
/// three bytes, so `bytes` encode differently at each of the three
/// positions a group can start them at. What does not depend on the bytes
/// around them is kept: the characters after those the bytes before reach
/// into, and before the last group's, which the bytes after may change.
fn shifted_base64(bytes: &[u8]) -> Vec<String> {
    let mut forms = Vec::new();
    for shift in 1..=2_usize {
        let mut shifted = vec![0_u8; shift];
        shifted.extend_from_slice(bytes);
        // 8 bits before reach into 2 characters, 16 bits into 3.
        let skip = shift + 1;
        for engine in [STANDARD_NO_PAD, URL_SAFE_NO_PAD] {
            let encoded = engine.encode(&shifted);
            let keep = encoded.len().saturating_sub(3);
            // Short ones would mask ordinary words by chance.
            if keep >= skip + 8 {
                forms.push(encoded[skip..keep].to_string());
            }
        }
    }
    forms
}

/// Registers the credentials of HTTP Basic authentication (RFC 7617):
/// base64 of `user:password`.
pub fn register_basic(user: &str, password: &str) {
    register(password);
    add(encoded_forms(format!("{user}:{password}").as_bytes()));
}

/// Registers SMTP credentials as `AUTH PLAIN` (RFC 4616: base64 of
/// `authzid NUL user NUL password`, with and without the authzid) and `AUTH
/// LOGIN` (the password in base64) send them.
pub fn register_smtp(user: &str, password: &str) {
    register(password);
    for plain in [format!("\0{user}\0{password}"), format!("{user}\0{user}\0{password}")] {
        add(encoded_forms(plain.as_bytes()));
    }
}

/// `text` with every registered secret, in every encoding, replaced by
/// `***`, also where whitespace splits it (a line break, a tab or spaces
/// between two of its characters: a server wrapping its reply, the lines a
/// provider's answer was joined from). Overlapping secrets are one span.
pub fn mask(text: &str) -> String {
    mask_spaced(text)
}

/// `text` masked (`mask`) and on one line, as a provider's answer is
/// stored (`last_error`, `sync_error`): each run of control characters (CR,
/// LF, tab, C1) or line separators, with the spaces around it, becomes one
/// space, so a malformed or multi-line answer reads on one line wherever it
/// is shown.
///
/// A secret the answer splits over lines, or with a space, a tab or a
/// control character between two of its characters (a server wrapping its
/// reply, an AUTH blob echoed over two lines), is masked too: the forms are
/// looked for with the whitespace left out.
pub fn mask_line(text: &str) -> String {
    let line = text
        .split(|c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    mask_spaced(&line)
}

/// What a secret is looked for without: whitespace and control characters
/// a reply may put between its characters.
fn skipped(c: char) -> bool {
    c.is_whitespace() || c.is_control()
}

/// `line` with every registered form masked, also where whitespace splits
/// it: the form's characters in order with only whitespace between them.
/// All forms are looked for in the text as given, and their spans merged:
/// masking a shorter secret first (one a password begins with) would leave
/// the rest of a longer one a reply splits.
fn mask_spaced(line: &str) -> String {
    // The line without its whitespace, and for each of its bytes the span
    // in `line` of the character it belongs to: a match at `p..q` in it
    // masks `at[p].0..at[q - 1].1` in the line.
    let mut compact = String::with_capacity(line.len());
    let mut at: Vec<(usize, usize)> = Vec::with_capacity(line.len());
    for (i, c) in line.char_indices().filter(|(_, c)| !skipped(*c)) {
        compact.push(c);
        at.extend(std::iter::repeat_n((i, i + c.len_utf8()), c.len_utf8()));
    }
    let span = |p: usize, q: usize| (at[p].0, at[q - 1].1);
    let mut hits: Vec<(usize, usize)> = Vec::new();
    if let Some(pieces) = PIECES.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        let starts: Vec<usize> = compact.char_indices().map(|(i, _)| i).chain([compact.len()]).collect();
        for window in starts.windows(PIECE + 1) {
            let (p, q) = (window[0], window[PIECE]);
            if pieces.contains(&compact[p..q]) {
                hits.push(span(p, q));
            }
        }
    }
    for form in FORMS.read().unwrap_or_else(|e| e.into_inner()).iter() {
        for (p, found) in compact.match_indices(form.as_str()) {
            hits.push(span(p, p + found.len()));
        }
    }
    if hits.is_empty() {
        return line.to_string();
    }
    hits.sort_unstable();
    // Overlapping hits are one masked span.
    let mut spans: Vec<(usize, usize)> = Vec::with_capacity(hits.len());
    for (start, end) in hits {
        match spans.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => spans.push((start, end)),
        }
    }
    let mut out = String::with_capacity(line.len());
    let mut done = 0;
    for (start, end) in spans {
        out.push_str(&line[done..start]);
        out.push_str(MASK);
        done = end;
    }
    out.push_str(&line[done..]);
    out
}

fn add(new: Vec<String>) {
    let mut forms = FORMS.write().unwrap_or_else(|e| e.into_inner());
    for f in new {
        let f: String = f.chars().filter(|c| !skipped(*c)).collect();
        if f.len() >= MIN_LEN && !forms.contains(&f) {
            forms.push(f);
        }
    }
    forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    let mut pieces = std::collections::HashSet::new();
    for form in forms.iter() {
        let chars: Vec<char> = form.chars().collect();
        for piece in chars.windows(PIECE) {
            pieces.insert(piece.iter().collect::<String>());
        }
    }
    *PIECES.write().unwrap_or_else(|e| e.into_inner()) = Some(pieces);
}

/// The base64 forms of `bytes`, each also in the text encodings.
fn encoded_forms(bytes: &[u8]) -> Vec<String> {
    base64_forms(bytes).iter().flat_map(|b| expand(b)).collect()
}

fn base64_forms(bytes: &[u8]) -> Vec<String> {
    vec![
        STANDARD.encode(bytes),
        STANDARD_NO_PAD.encode(bytes),
        URL_SAFE.encode(bytes),
        URL_SAFE_NO_PAD.encode(bytes),
    ]
}

/// `s` as is and in the encodings a text answer may carry it in.
fn expand(s: &str) -> Vec<String> {
    let mut forms = vec![s.to_string(), s.to_uppercase(), s.to_lowercase()];
    // HTML (an error page repeating the request).
    let html = s
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    forms.push(html.replace('\'', "&#39;"));
    forms.push(html.replace('\'', "&#x27;"));
    // JSON: serde's escapes; non-ASCII as `\uXXXX` (Python's ensure_ascii,
    // PHP); `/` as `\/` (PHP's json_encode); and every character that is not
    // alphanumeric as `\u00XX` (some encoders).
    let json = serde_json::to_string(s).unwrap_or_default();
    let json = json.trim_matches('"').to_string();
    let utf16 = |c: char, upper: bool| -> String {
        let mut buf = [0u16; 2];
        c.encode_utf16(&mut buf)
            .iter()
            .map(|u| {
                if upper {
                    format!("\\u{u:04X}")
                } else {
                    format!("\\u{u:04x}")
                }
            })
            .collect()
    };
    for upper in [false, true] {
        let ascii: String = json
            .chars()
            .map(|c| if c.is_ascii() { c.to_string() } else { utf16(c, upper) })
            .collect();
        forms.push(ascii.replace('/', "\\/"));
        forms.push(ascii);
    }
    // Go's encoding/json: `&`, `<` and `>` as `\u0026`, `\u003c`, `\u003e`.
    let go = json
        .replace('&', "\\u0026")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e");
    forms.push(go.replace('/', "\\/"));
    forms.push(go);
    forms.push(json.replace('/', "\\/"));
    forms.push(json);
    for upper in [false, true] {
        forms.push(
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_string()
                    } else {
                        utf16(c, upper)
                    }
                })
                .collect(),
        );
        // Percent-encoding (RFC 3986 unreserved kept), and form-encoding's `+`.
        let pct: String = s
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    char::from(b).to_string()
                } else if upper {
                    format!("%{b:02X}")
                } else {
                    format!("%{b:02x}")
                }
            })
            .collect();
        forms.push(pct.replace("%20", "+"));
        // Python's urllib.parse.quote keeps `/`.
        let slash = if upper { "%2F" } else { "%2f" };
        forms.push(pct.replace(slash, "/"));
        forms.push(pct);
    }
    forms.sort();
    forms.dedup();
    forms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_split_over_lines_or_by_whitespace_is_masked() {
        // A shorter secret the longer one begins with, registered too.
        register("hunter2-");
        register_smtp("alerts@example.com", "hunter2-Secr3t");
        for answer in [
            "535 hunter2-\r\nSecr3t rejected",
            "535 hunter2-\rSecr3t rejected",
            "535 hunter2- \tSecr3t rejected",
        ] {
            assert_eq!(mask_line(answer), "535 *** rejected", "{answer:?}");
        }
        // AUTH PLAIN's blob, wrapped over two lines by the server.
        let blob = STANDARD.encode("\0alerts@example.com\0hunter2-Secr3t");
        let (a, b) = blob.split_at(20);
        let masked = mask_line(&format!("535 {a}\r\n{b} bad"));
        assert_eq!(masked, "535 *** bad");
        assert!(
            !masked.contains(&a[..8]) && !masked.contains(&b[b.len() - 8..]),
            "{masked}"
        );
        assert_eq!(mask_line("nothing to hide here"), "nothing to hide here");
    }

    #[test]
    fn a_secret_in_base64_after_other_bytes_is_masked() {
        register("S3cr-et/pass+wd");
        for before in ["x", "ab", "user:", "carl:"] {
            let blob = STANDARD.encode(format!("{before}S3cr-et/pass+wd"));
            let masked = mask(&format!("b={blob} end"));
            let decoded_tail = &blob[blob.len() - 8..];
            assert!(
                masked.contains("***") && !masked.contains(decoded_tail),
                "{before:?}: {masked}"
            );
        }
    }

    #[test]
    fn a_secret_cut_short_is_masked_by_its_pieces() {
        register_smtp("carol@example.com", "Tr0ub4dor&3-horse");
        let blob = STANDARD.encode("\0carol@example.com\0Tr0ub4dor&3-horse");
        // The blob echoed cut short, and the password's first 12 characters.
        let masked = mask(&format!("535 bad blob {} for Tr0ub4dor&3-h, sorry", &blob[..40]));
        assert_eq!(masked, "535 bad blob *** for ***, sorry");
        // A piece shorter than ten characters is left (it gives little away).
        assert_eq!(mask("Tr0ub4dor"), "Tr0ub4dor");
    }

    #[test]
    fn a_stored_answer_is_on_one_line() {
        assert_eq!(
            mask_line("451 queue\rfull \r\n  try\tlater\u{2028}soon\n"),
            "451 queue full try later soon"
        );
        assert_eq!(mask_line("ok  as is"), "ok  as is", "spaces within a line stay");
    }

    #[test]
    fn every_encoding_is_masked() {
        let secret = "s3cr/t+tok én&x";
        register(secret);
        register_basic("ACsid", secret);
        register_smtp("user@example.com", secret);
        let b64 = |s: &str| STANDARD.encode(s);
        for leak in [
            secret.to_string(),
            "s3cr\\/t+tok én&x".to_string(),
            "s3cr\\/t+tok \\u00e9n&x".to_string(),
            "s3cr%2Ft%2Btok%20%C3%A9n%26x".to_string(),
            "s3cr%2ft%2btok+%c3%a9n%26x".to_string(),
            "s3cr/t%2Btok%20%C3%A9n%26x".to_string(),
            "s3cr/t+tok én&amp;x".to_string(),
            "s3cr/t+tok én\\u0026x".to_string(),
            "S3CR/T+TOK ÉN&X".to_string(),
            b64(secret),
            b64(&format!("ACsid:{secret}")),
            URL_SAFE_NO_PAD.encode(format!("ACsid:{secret}")),
            b64(&format!("\0user@example.com\0{secret}")),
            b64(&format!("user@example.com\0user@example.com\0{secret}")),
        ] {
            let text = format!("server said: <{leak}> end");
            let masked = mask(&text);
            assert_eq!(masked, "server said: <***> end", "{leak:?}");
        }
        assert_eq!(mask("nothing secret here"), "nothing secret here");
    }
}
