//! Fuzz target: every built-in template renders a hostile context (huge strings, markup, wrong types, deep nesting) to text or an error, never a panic, and HTML output never carries a raw `<script` from the data.

#![no_main]

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use rappel::config::Locale;
use rappel::templates::{Templates, builtin_kinds};
use serde_json::{Map, Number, Value};

/// Every name the built-in templates read, at the top or inside an object.
const NAMES: &[&str] = &[
    "attachment_name",
    "author",
    "coming",
    "contact",
    "count",
    "created_local",
    "day_local",
    "days_inactive",
    "done_count",
    "due_local",
    "entries",
    "ever_active",
    "hours_left",
    "last_active_local",
    "loan",
    "message",
    "message_short",
    "missed_count",
    "now_local",
    "overdue_days",
    "past",
    "recipient",
    "returned_local",
    "scheduled_local",
    "session",
    "site_url",
    "table",
    "time_local",
    "title",
    "to",
    "today",
    "tomorrow",
    "truncated",
    "week_from_local",
    "week_to_local",
];

/// The fields of the objects above (contact, loan, session, table, entries...).
const FIELDS: &[&str] = &[
    "name",
    "parent",
    "item",
    "subject",
    "objective",
    "link",
    "done",
    "time_local",
    "day_local",
    "reference",
    "device",
    "customer",
    "stage",
    "days",
    "threshold",
    "row_count",
    "truncated",
    "rows",
    "columns",
];

const HOSTILE: &[&str] = &[
    "<script>alert(1)</script>",
    "<ScRiPt src=//x>",
    "\"><script>alert('x')</script><a href=\"",
    "' onmouseover='alert(1)",
    "javascript:alert(1)",
    "{{ site_url }}{% for x in loop %}",
    "{% raw %}",
    "&lt;script&gt;",
    "</p></body></html>",
    "\r\nBcc: victim@example.com\r\n",
    "\u{202e}\u{0}\u{feff}",
    "🎉é\u{301}",
    "",
    " ",
];

fn string(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    let mut out = String::new();
    for _ in 0..u.int_in_range(1..=4)? {
        // Huge strings now and then: each is rendered many times over.
        match u.int_in_range(0..=7)? {
            0..=2 => out.push_str(u.choose(HOSTILE)?),
            3..=5 => out.push_str(<&str>::arbitrary(u)?),
            6 => {
                let piece = *u.choose(HOSTILE)?;
                out.push_str(&piece.repeat(usize::from(u.arbitrary::<u16>()?) % 2_000));
            }
            _ => out.push_str(&"x".repeat(usize::from(u.arbitrary::<u16>()?))),
        }
    }
    Ok(out)
}

fn object(u: &mut Unstructured<'_>, keys: &[&str], depth: u32) -> arbitrary::Result<Value> {
    let mut map = Map::new();
    for key in keys {
        // Mostly present, so that rendering gets past strict undefined checks.
        if u.ratio(15, 16)? {
            map.insert((*key).to_string(), value(u, depth)?);
        }
    }
    if u.ratio(1, 8)? {
        map.insert(string(u)?, value(u, depth)?);
    }
    Ok(Value::Object(map))
}

fn value(u: &mut Unstructured<'_>, depth: u32) -> arbitrary::Result<Value> {
    let last = if depth == 0 { 6 } else { 9 };
    Ok(match u.int_in_range(0..=last)? {
        0 => Value::String(string(u)?),
        1 => Value::Null,
        2 => Value::Bool(u.arbitrary()?),
        3 => Value::from(u.arbitrary::<i64>()?),
        4 => Value::from(u.arbitrary::<u64>()?),
        5 => Number::from_f64(u.arbitrary()?).map_or(Value::Null, Value::Number),
        6 => Value::from(*u.choose(&[0i64, 1, -1, 5, 6, i64::MAX, i64::MIN])?),
        7 => {
            let n = u.int_in_range(0..=8)?;
            Value::Array((0..n).map(|_| value(u, depth - 1)).collect::<arbitrary::Result<_>>()?)
        }
        8 => {
            let n = u.int_in_range(0..=8)?;
            Value::Array(
                (0..n)
                    .map(|_| object(u, FIELDS, depth - 1))
                    .collect::<arbitrary::Result<_>>()?,
            )
        }
        _ => object(u, FIELDS, depth - 1)?,
    })
}

fn templates() -> &'static Templates {
    static TEMPLATES: OnceLock<Templates> = OnceLock::new();
    TEMPLATES.get_or_init(|| Templates::new(None).expect("built-in templates load"))
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(locale) = u.choose(&Locale::ALL).copied() else {
        return;
    };
    let Ok(ctx) = object(&mut u, NAMES, 2) else {
        return;
    };
    for kind in builtin_kinds() {
        let Ok(rendered) = templates().render(locale, kind, &ctx) else {
            continue;
        };
        assert!(
            !rendered.subject.contains(['\r', '\n']),
            "{kind}: {:?}",
            rendered.subject
        );
        if let Some(html) = &rendered.html {
            let lower = html.to_ascii_lowercase();
            assert!(!lower.contains("<script"), "{kind}: raw <script in HTML");
            assert!(
                !lower.contains("onmouseover='"),
                "{kind}: a quote from the data is raw in HTML"
            );
        }
    }
});
