//! Cutting text to a channel's limit: on grapheme boundaries (an emoji, a
//! flag or an accented letter is never split; Unicode UAX #29 through the
//! `unicode-segmentation` crate), at a word when one is near, marked `…`.

use unicode_segmentation::UnicodeSegmentation;

/// Twilio refuses a message body over 1,600 characters (error 21617, a
/// permanent failure: Twilio's Messages resource docs). Counted here in
/// UTF-16 code units, as Twilio counts, so an emoji counts two.
pub const TWILIO_BODY_MAX: usize = 1_600;

/// Email subjects are cut here: far inside RFC 5322's 998-character line,
/// once encoded (RFC 2047 can triple a non-ASCII subject), and still more
/// than any mail client shows.
pub const SUBJECT_MAX: usize = 250;

const MARK: &str = "…";

/// `text` trimmed, cut to at most `max` UTF-16 code units with `…` at the
/// end when it had to be cut; returns whether it was.
pub fn cut(text: &str, max: usize) -> (String, bool) {
    let text = text.trim();
    if utf16_len(text) <= max {
        return (text.to_string(), false);
    }
    let room = max.saturating_sub(utf16_len(MARK));
    let mut end = 0;
    let mut used = 0;
    for (i, g) in text.grapheme_indices(true) {
        let n = utf16_len(g);
        if used + n > room {
            break;
        }
        used += n;
        end = i + g.len();
    }
    let kept = &text[..end];
    // At a word when one ends in the last fifth of the room.
    let at_word = match kept.rfind(char::is_whitespace) {
        Some(i) if utf16_len(&kept[..i]) > room * 4 / 5 => &kept[..i],
        _ => kept,
    };
    (format!("{}{MARK}", at_word.trim_end()), true)
}

/// A WhatsApp or SMS body that fits Twilio's limit whatever the data: cut as
/// [`cut`] does, but a link that ends the body is kept whole after the mark.
pub fn short_body(body: &str) -> String {
    let body = body.trim();
    if utf16_len(body) <= TWILIO_BODY_MAX {
        return body.to_string();
    }
    if let Some((head, link)) = body.rsplit_once(char::is_whitespace)
        && link.contains("://")
        && utf16_len(link) <= TWILIO_BODY_MAX / 4
    {
        let (head, _) = cut(head, TWILIO_BODY_MAX - utf16_len(link) - 1);
        return format!("{head} {link}");
    }
    cut(body, TWILIO_BODY_MAX).0
}

/// A subject on one line, cut to [`SUBJECT_MAX`].
pub fn subject(text: &str) -> String {
    cut(text, SUBJECT_MAX).0
}

fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_left_alone_and_long_text_cut_at_a_word() {
        assert_eq!(cut("  hello  ", 10), ("hello".into(), false));
        let (text, cut_) = cut(&"mot ".repeat(400), 1000);
        assert!(cut_ && text.ends_with("mot…"), "{text}");
        assert!(utf16_len(&text) <= 1000);
        let (text, _) = cut(&"é".repeat(2000), 1000);
        assert_eq!(text.chars().count(), 1000);
    }

    #[test]
    fn graphemes_are_never_split() {
        // A family emoji is 7 scalars and 11 UTF-16 units; a flag is two regional indicators.
        let family = "👨‍👩‍👧‍👦";
        let flag = "🇬🇦";
        for unit in [family, flag, "e\u{301}"] {
            let text = unit.repeat(400);
            let (out, _) = cut(&text, 1600);
            let body = out.trim_end_matches('…');
            assert!(utf16_len(&out) <= 1600);
            assert_eq!(body.graphemes(true).filter(|g| *g != unit).count(), 0, "{unit:?} split");
        }
    }

    #[test]
    fn a_body_keeps_its_closing_link() {
        let link = "https://tutoring.example.org/sessions/1";
        let body = format!(
            "Tomorrow 17:00: Maths. Objective: {}. {link}",
            "redo exercise 4 ".repeat(200)
        );
        let out = short_body(&body);
        assert!(utf16_len(&out) <= TWILIO_BODY_MAX, "{}", out.len());
        assert!(out.ends_with(&format!("… {link}")), "{out}");
        assert!(out.starts_with("Tomorrow 17:00: Maths."));
        assert_eq!(short_body("short one"), "short one");
    }

    #[test]
    fn subjects_are_bounded() {
        let s = subject(&"Rapport très long ".repeat(100));
        assert!(s.chars().count() <= SUBJECT_MAX && s.ends_with('…'));
    }
}
