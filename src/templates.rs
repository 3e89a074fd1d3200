//! Message templates (minijinja 3): built-ins compiled into the binary, a file
//! with the same relative name under `templates_dir` overriding one. Undefined
//! variables are errors; `.html` templates are autoescaped.

use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use serde::Serialize;

use crate::config::Locale;

include!(concat!(env!("OUT_DIR"), "/builtin_templates.rs"));

/// One message rendered for one recipient.
#[derive(Clone, Debug, Serialize)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    /// WhatsApp / SMS body, for kinds that have one.
    pub short: Option<String>,
}

/// Which optional parts of a message to render.
#[derive(Clone, Copy, Debug)]
pub struct Parts {
    /// `.html`: the message goes by email.
    pub html: bool,
    /// `.short.txt`: the message goes by SMS or WhatsApp.
    pub short: bool,
}

impl Parts {
    pub const ALL: Parts = Parts {
        html: true,
        short: true,
    };
}

pub struct Templates {
    env: Environment<'static>,
}

/// `ctx` as the templates read it, owned: what [`Templates::render_data`]
/// takes.
pub fn data(ctx: &impl Serialize) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(ctx))
}

impl Templates {
    pub fn new(overrides: Option<PathBuf>) -> anyhow::Result<Self> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_syntax(SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build()?);
        env.set_loader(move |name: &str| {
            if name.split('/').any(|part| part == ".." || part.is_empty()) {
                return Ok(None);
            }
            if let Some(dir) = &overrides {
                let path = dir.join(name);
                match std::fs::read_to_string(&path) {
                    Ok(source) => return Ok(Some(source)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(minijinja::Error::new(
                            ErrorKind::InvalidOperation,
                            format!("cannot read {}: {e}", path.display()),
                        ));
                    }
                }
            }
            Ok(BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, s)| s.to_string()))
        });
        Ok(Templates { env })
    }

    /// Renders `<locale>/<kind>.subject.txt`, `.txt`, and, where they exist,
    /// `.html` and `.short.txt`.
    pub fn render(&self, locale: Locale, kind: impl AsRef<str>, ctx: &impl Serialize) -> anyhow::Result<Rendered> {
        self.render_parts(locale, kind, ctx, Parts::ALL)
    }

    /// As [`Templates::render`], leaving out the parts `parts` does not ask
    /// for (`None` in [`Rendered`]): a message only by email needs no
    /// `.short.txt`, one only by SMS or WhatsApp no `.html`. Errors: the
    /// subject or text template is missing, or a template fails to render
    /// (its name and line in the message).
    pub fn render_parts(
        &self,
        locale: Locale,
        kind: impl AsRef<str>,
        ctx: &impl Serialize,
        parts: Parts,
    ) -> anyhow::Result<Rendered> {
        // Converted once, shared by the four parts.
        self.render_data(locale, kind.as_ref(), &data(ctx), parts)
    }

    /// As [`Templates::render_parts`], from template data already converted
    /// by [`data`] (on any thread: the planners convert, a renderer thread
    /// renders).
    pub fn render_data(
        &self,
        locale: Locale,
        kind: &str,
        ctx: &minijinja::Value,
        parts: Parts,
    ) -> anyhow::Result<Rendered> {
        let subject = self
            .part(locale, kind, "subject.txt", ctx)?
            .with_context(|| format!("template {}/{kind}.subject.txt is missing", locale.as_str()))?;
        let text = self
            .part(locale, kind, "txt", ctx)?
            .with_context(|| format!("template {}/{kind}.txt is missing", locale.as_str()))?;
        let optional = |wanted: bool, ext: &str| {
            if wanted {
                self.part(locale, kind, ext, ctx)
            } else {
                Ok(None)
            }
        };
        Ok(Rendered {
            subject: crate::shorten::subject(&one_line(&subject)),
            text,
            html: optional(parts.html, "html")?,
            short: optional(parts.short, "short.txt")?,
        })
    }

    fn part(&self, locale: Locale, kind: &str, ext: &str, ctx: &minijinja::Value) -> anyhow::Result<Option<String>> {
        let name = format!("{}/{kind}.{ext}", locale.as_str());
        let template = match self.env.get_template(&name) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::TemplateNotFound => return Ok(None),
            Err(e) => return Err(anyhow::Error::new(e).context(format!("template {name}"))),
        };
        let out = template
            .render(ctx)
            .map_err(|e| anyhow::anyhow!("{}", self.describe(&e)))
            .with_context(|| format!("cannot render template {name}"))?;
        Ok(Some(out))
    }
}

impl Templates {
    /// minijinja's error with its source location, on one line. An
    /// undefined value names the expression as written in the template
    /// (`` `contact.nom` is undefined ``).
    fn describe(&self, e: &minijinja::Error) -> String {
        let what = match (e.kind(), e.detail()) {
            // minijinja names an attribute missing from a value that exists
            // ("`contact.nick` is undefined") but not a missing top-level name.
            (ErrorKind::UndefinedError, Some(detail)) => detail.to_string(),
            (ErrorKind::UndefinedError, None) => match self.expression(e) {
                Some(expr) => format!("`{expr}` is undefined"),
                None => e.detailed_display_short(),
            },
            _ => e.detailed_display_short(),
        };
        match (e.name(), e.line()) {
            (Some(name), Some(line)) => format!("{what} ({name} line {line})"),
            _ => what,
        }
    }

    /// The template text an error points at, trimmed and at most one line
    /// of 80 characters; `None` when minijinja gives no span.
    fn expression(&self, e: &minijinja::Error) -> Option<String> {
        let source = self.env.get_template(e.name()?).ok()?.source().to_string();
        let text = source.get(e.range()?)?.trim();
        let first = text.lines().next()?;
        (!first.is_empty()).then(|| first.chars().take(80).collect())
    }
}

trait ShortDisplay {
    fn detailed_display_short(&self) -> String;
}

impl ShortDisplay for minijinja::Error {
    fn detailed_display_short(&self) -> String {
        match self.detail() {
            Some(detail) => format!("{}: {detail}", self.kind()),
            None => self.kind().to_string(),
        }
    }
}

/// Subjects are one line: CR and LF would let data inject headers.
fn one_line(s: &str) -> String {
    s.split(['\r', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// An instant as a person reads it in their zone and language.
pub fn local_datetime(t: DateTime<Utc>, zone: Tz, locale: Locale) -> String {
    let local = t.with_timezone(&zone);
    let mut out = date_string(&local, locale);
    out.push(' ');
    push_time(&mut out, &local);
    out
}

/// A date as a person reads it in their zone and language.
pub fn local_date(t: DateTime<Utc>, zone: Tz, locale: Locale) -> String {
    date_string(&t.with_timezone(&zone), locale)
}

/// `dd/mm/yyyy` (French) or `yyyy-mm-dd`, as chrono's `%d/%m/%Y` and
/// `%Y-%m-%d` write it, without parsing a format string each time.
fn date_string(local: &DateTime<Tz>, locale: Locale) -> String {
    use chrono::Datelike;
    let year = local.year();
    if !(0..=9999).contains(&year) {
        // chrono signs years of more than four digits: its own formatting.
        return match locale {
            Locale::Fr => local.format("%d/%m/%Y").to_string(),
            Locale::En => local.format("%Y-%m-%d").to_string(),
        };
    }
    let mut out = String::with_capacity(10);
    let (y, m, d) = (year as u32, local.month(), local.day());
    match locale {
        Locale::Fr => {
            push_2(&mut out, d);
            out.push('/');
            push_2(&mut out, m);
            out.push('/');
            push_2(&mut out, y / 100);
            push_2(&mut out, y % 100);
        }
        Locale::En => {
            push_2(&mut out, y / 100);
            push_2(&mut out, y % 100);
            out.push('-');
            push_2(&mut out, m);
            out.push('-');
            push_2(&mut out, d);
        }
    }
    out
}

/// Appends `n` (below 100) as two digits.
fn push_2(out: &mut String, n: u32) {
    out.push(char::from(b'0' + (n / 10 % 10) as u8));
    out.push(char::from(b'0' + (n % 10) as u8));
}

/// Appends the time of day as `%H:%M`.
fn push_time(out: &mut String, local: &DateTime<Tz>) {
    use chrono::Timelike;
    push_2(out, local.hour());
    out.push(':');
    push_2(out, local.minute());
}

/// A day as a person says it: "mardi 10 mars", "Tuesday 10 March".
pub fn local_day(t: DateTime<Utc>, zone: Tz, locale: Locale) -> String {
    use chrono::Datelike;
    const FR_DAYS: [&str; 7] = ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"];
    const FR_MONTHS: [&str; 12] = [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ];
    // chrono's `%A %-d %B`.
    const EN_DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    const EN_MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let local = t.with_timezone(&zone);
    let (weekday, day, month) = (
        local.weekday().num_days_from_monday() as usize,
        local.day(),
        local.month0() as usize,
    );
    match locale {
        Locale::Fr => format!(
            "{} {}{} {}",
            FR_DAYS[weekday],
            day,
            if day == 1 { "er" } else { "" },
            FR_MONTHS[month]
        ),
        Locale::En => format!("{} {} {}", EN_DAYS[weekday], day, EN_MONTHS[month]),
    }
}

/// A time of day on the 24-hour clock: "18:30".
pub fn local_time(t: DateTime<Utc>, zone: Tz) -> String {
    let mut out = String::with_capacity(5);
    push_time(&mut out, &t.with_timezone(&zone));
    out
}

/// `label: text` as the locale writes it: French puts a space before the
/// colon (a plain one, as the built-in templates do), English none.
pub fn labelled(locale: Locale, label: &str, text: &str) -> String {
    match locale {
        Locale::Fr => format!("{label} : {text}"),
        Locale::En => format!("{label}: {text}"),
    }
}

/// The kinds that have built-in templates, for `config check`.
pub fn builtin_kinds() -> Vec<&'static str> {
    let mut kinds: Vec<&str> = BUILTIN
        .iter()
        .filter_map(|(name, _)| name.split_once('/').map(|(_, file)| file))
        .filter_map(|file| file.strip_suffix(".subject.txt"))
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_lose_line_breaks() {
        assert_eq!(one_line("a\r\nBcc: x@y\n"), "a Bcc: x@y");
    }

    #[test]
    fn override_wins_and_html_is_escaped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("en")).unwrap();
        std::fs::write(dir.path().join("en/test.subject.txt"), "Custom {{ to }}").unwrap();
        std::fs::write(dir.path().join("en/test.html"), "<p>{{ to }}</p>").unwrap();
        let t = Templates::new(Some(dir.path().to_path_buf())).unwrap();
        let ctx = serde_json::json!({"to": "<b>x</b>", "now_local": "n", "site_url": null});
        let r = t.render(Locale::En, "test", &ctx).unwrap();
        assert_eq!(r.subject, "Custom <b>x</b>");
        assert_eq!(r.html.as_deref(), Some("<p>&lt;b&gt;x&lt;&#x2f;b&gt;</p>"));
    }

    /// A missing name, top-level or an attribute, is named in the error
    /// with the file and line it is on.
    #[test]
    fn an_undefined_value_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("en")).unwrap();
        let t = |subject: &str| {
            std::fs::write(dir.path().join("en/test.subject.txt"), subject).unwrap();
            let t = Templates::new(Some(dir.path().to_path_buf())).unwrap();
            let ctx = serde_json::json!({"to": {"name": "x"}, "now_local": "n", "site_url": null});
            format!("{:#}", t.render(Locale::En, "test", &ctx).unwrap_err())
        };
        let top = t("Hi\n{{ seller.name | upper }}");
        assert!(
            top.contains("`seller` is undefined (en/test.subject.txt line 2)"),
            "{top}"
        );
        let attribute = t("{{ to.nickname }}");
        assert!(attribute.contains("`to.nickname` is undefined"), "{attribute}");
    }

    #[test]
    fn days_read_as_people_say_them() {
        let t = crate::instant::parse("2026-03-09T23:30:00Z").unwrap();
        let paris = chrono_tz::Europe::Paris;
        assert_eq!(local_day(t, paris, Locale::Fr), "mardi 10 mars");
        assert_eq!(local_day(t, paris, Locale::En), "Tuesday 10 March");
        assert_eq!(local_time(t, paris), "00:30");
        let first = crate::instant::parse("2026-04-01T10:00:00Z").unwrap();
        assert_eq!(local_day(first, paris, Locale::Fr), "mercredi 1er avril");
    }

    /// The hand-written formats are chrono's, to the character.
    #[test]
    fn dates_and_times_as_chrono_writes_them() {
        let zones = [
            chrono_tz::Europe::Paris,
            chrono_tz::America::New_York,
            chrono_tz::Asia::Kolkata,
        ];
        let mut t = crate::instant::parse("2025-12-25T03:07:00Z").unwrap();
        for _ in 0..800 {
            for zone in zones {
                let local = t.with_timezone(&zone);
                assert_eq!(local_date(t, zone, Locale::Fr), local.format("%d/%m/%Y").to_string());
                assert_eq!(local_date(t, zone, Locale::En), local.format("%Y-%m-%d").to_string());
                assert_eq!(local_time(t, zone), local.format("%H:%M").to_string());
                assert_eq!(
                    local_datetime(t, zone, Locale::Fr),
                    local.format("%d/%m/%Y %H:%M").to_string()
                );
                assert_eq!(
                    local_datetime(t, zone, Locale::En),
                    local.format("%Y-%m-%d %H:%M").to_string()
                );
                assert_eq!(local_day(t, zone, Locale::En), local.format("%A %-d %B").to_string());
            }
            t += chrono::Duration::minutes(617);
        }
        for far in ["0001-01-02T00:00:00Z", "9999-12-30T12:00:00Z"] {
            let t = crate::instant::parse(far).unwrap();
            let local = t.with_timezone(&chrono_tz::UTC);
            assert_eq!(
                local_date(t, chrono_tz::UTC, Locale::En),
                local.format("%Y-%m-%d").to_string()
            );
        }
    }

    #[test]
    fn undefined_variables_are_errors() {
        let t = Templates::new(None).unwrap();
        let err = t.render(Locale::Fr, "test", &serde_json::json!({})).unwrap_err();
        assert!(format!("{err:#}").contains("undefined"), "{err:#}");
    }
}
