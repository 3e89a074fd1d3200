//! The masking function: for any secret (at least 4 bytes) and any answer
//! that carries it, as is or in one of the encodings a server may echo it in
//! (JSON-escaped, percent-encoded, base64 of it or of `user:secret`), the
//! masked text never holds the secret in that form; and masking never
//! panics, whatever the text.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (String, String, String, u8)| {
    let (secret, before, after, form) = input;
    if secret.len() < 4 || secret.chars().all(char::is_whitespace) {
        let _ = rappel::mask::mask(&format!("{before}{secret}{after}"));
        return;
    }
    rappel::mask::register(&secret);
    rappel::mask::register_basic("user", &secret);
    let b64 = base64::engine::general_purpose::STANDARD;
    let leaked = match form % 5 {
        0 => secret.clone(),
        1 => serde_json::to_string(&secret).unwrap().trim_matches('"').to_string(),
        // RFC 3986: unreserved characters stay as they are.
        2 => secret
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>(),
        3 => b64.encode(&secret),
        _ => b64.encode(format!("user:{secret}")),
    };
    if leaked.len() < 4 {
        return;
    }
    let masked = rappel::mask::mask(&format!("{before}{leaked}{after}"));
    assert!(
        !masked.contains(&leaked) || before.contains(&leaked) || after.contains(&leaked) || rappel::mask::MASK.contains(&leaked),
        "{leaked:?} left in {masked:?}"
    );
});
