//! Addresses and phone numbers as host applications write them, made
//! usable: an email address with a display name, spaces or capitals, in a
//! list whose quoted names hold commas, or with an internationalised domain
//! (RFC 5890, sent as punycode so any server takes it); a phone with spaces,
//! dots, dashes, brackets, a `00` international prefix or, with a default
//! region, in national form, to E.164 (libphonenumber's rules, through the
//! `phonenumber` crate). What cannot be used says why.

use lettre::message::Mailbox;
pub use phonenumber::country::Id as Region;

/// The bare address of `raw` (`Marie Curie <Marie@Exemple.fr>` →
/// `Marie@exemple.fr`): the domain lower-cased and in ASCII (punycode), the
/// local part as written. `Err` says why it is not an address.
pub fn email(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    // The common case, a bare address with an ASCII lower-case domain: one
    // parse, nothing to convert.
    if !trimmed.contains(['<', '"'])
        && let Ok(address) = trimmed.parse::<lettre::Address>()
        && address
            .domain()
            .bytes()
            .all(|b| b.is_ascii() && !b.is_ascii_uppercase())
    {
        return Ok(address.to_string());
    }
    let mailbox: Mailbox = trimmed
        .parse()
        .map_err(|e| format!("{trimmed:?} is not a valid email address ({e})"))?;
    let address = mailbox.email;
    let domain = idna::domain_to_ascii(address.domain())
        .map_err(|_| format!("{trimmed:?}: the domain is not a valid internationalised domain"))?;
    Ok(format!("{}@{domain}", address.user()))
}

/// The entries of an address list separated by `,` or `;`, where a quoted
/// display name or a bracketed address may hold either (`"Dupont, Jean"
/// <jean@example.com>; b@example.com`); trimmed, empty ones dropped,
/// duplicates (by bare address, case-insensitively) dropped, in order.
pub fn email_list(list: &str) -> Vec<String> {
    let mut entries = Vec::new();
    let (mut current, mut quoted, mut bracketed, mut escaped) = (String::new(), false, false, false);
    for c in list.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => bracketed = true,
            '>' if !quoted => bracketed = false,
            ',' | ';' if !quoted && !bracketed => {
                entries.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    entries.push(current);
    let mut seen = std::collections::HashSet::new();
    entries
        .into_iter()
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty() && seen.insert(email(e).unwrap_or_else(|_| e.clone()).to_lowercase()))
        .collect()
}

/// `raw` as an E.164 number (`+33612345678`). A number without its country
/// code is read in `region` (a national `0` prefix dropped); without a
/// region it must start with `+` or `00`. `Err` says why it cannot be used.
pub fn phone(raw: &str, region: Option<Region>) -> Result<String, String> {
    let trimmed = raw.trim();
    // The common case, already E.164, costs no parsing.
    if crate::channels::twilio::is_e164(trimmed) {
        return Ok(trimmed.to_string());
    }
    // Full-width digits and plus (typed with an East Asian keyboard) and
    // any Unicode space (French typography's narrow no-break space) as ASCII.
    let ascii: String = trimmed
        .chars()
        .map(|c| match c {
            '０'..='９' => char::from(b'0' + (c as u32 - '０' as u32) as u8),
            '＋' => '+',
            c if c.is_whitespace() => ' ',
            c => c,
        })
        .collect();
    let trimmed = ascii.as_str();
    let unusable = |why: &str| format!("phone {trimmed:?} {why} (E.164 expected, such as +33612345678)");
    let international = match trimmed.strip_prefix("00") {
        Some(rest) if region.is_none() => format!("+{rest}"),
        _ => trimmed.to_string(),
    };
    let number = phonenumber::parse(region, &international).map_err(|e| {
        unusable(&match (region, e) {
            (None, phonenumber::ParseError::InvalidCountryCode) => {
                "has no country code, and [whatsapp] default_region is not set".to_string()
            }
            (_, e) => format!("is not a phone number ({e})"),
        })
    })?;
    let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
    if crate::channels::twilio::is_e164(&e164) {
        Ok(e164)
    } else {
        Err(unusable("is not a phone number"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_hosts_write_them() {
        assert_eq!(email(" Marie Curie <Marie@Example.COM> ").unwrap(), "Marie@example.com");
        assert_eq!(
            email("\"Dupont, Jean\" <jean@example.com>").unwrap(),
            "jean@example.com"
        );
        assert_eq!(email("josé@bücher.example").unwrap(), "josé@xn--bcher-kva.example");
        assert_eq!(email("a@bücher.example").unwrap(), "a@xn--bcher-kva.example");
        for bad in ["lou@@example.com", "nobody", "", "<a@b.c", "a@-bad-.com"] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lists_split_outside_quotes_and_brackets() {
        assert_eq!(
            email_list("\"Dupont, Jean\" <jean@example.com>; b@example.com, , B@Example.com ,\"x;y\" <c@example.com>"),
            [
                "\"Dupont, Jean\" <jean@example.com>",
                "b@example.com",
                "\"x;y\" <c@example.com>"
            ]
        );
        assert_eq!(
            email_list("a@x.com,jean@example.com, Jean <JEAN@example.com>"),
            ["a@x.com", "jean@example.com"]
        );
    }

    #[test]
    fn phones_to_e164() {
        let fr: Region = "FR".parse().unwrap();
        for (raw, region, want) in [
            ("+33 6 12 34 56 78", None, "+33612345678"),
            ("+33 (0)6 12 34 56 78", None, "+33612345678"),
            ("+1 (415) 555-0100", None, "+14155550100"),
            ("0033 6 12 34 56 78", None, "+33612345678"),
            ("0033 6 12 34 56 78", Some(fr), "+33612345678"),
            ("06 12 34 56 78", Some(fr), "+33612345678"),
            ("06.12.34.56.78", Some(fr), "+33612345678"),
            ("+24107123456", None, "+24107123456"),
            (
                "+33\u{202F}6\u{202F}12\u{202F}34\u{202F}56\u{202F}78",
                None,
                "+33612345678",
            ),
            ("＋３３ ６ １２ ３４ ５６ ７８", None, "+33612345678"),
        ] {
            assert_eq!(phone(raw, region).as_deref(), Ok(want), "{raw} in {region:?}");
        }
        let err = phone("06 12 34 56 78", None).unwrap_err();
        assert!(err.contains("default_region"), "{err}");
        for bad in ["12", "call me", "+33 6", "06 12 34 56 78 90 12 34 56"] {
            assert!(phone(bad, Some(fr)).is_err(), "{bad:?}");
        }
    }
}
