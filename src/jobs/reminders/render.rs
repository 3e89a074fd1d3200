//! Rendering a due reminder's messages: a [`Draft`] holds the messages of one
//! reminder, one per channel, with the template data they are rendered from;
//! [`Draft::render`] fills in their subject and bodies. The planners make
//! drafts; in a run that writes, a renderer thread renders them while the
//! planners read on (`writer.rs`).

use anyhow::Context;

use crate::config::Locale;
use crate::domain::planned::Planned;
use crate::domain::{Channel, Kind};
use crate::templates::{Parts, Templates};

/// The messages of one due reminder before rendering: their subject, body
/// and HTML are empty until [`Draft::render`] fills them in.
pub struct Draft {
    pub locale: Locale,
    pub kind: Kind,
    /// The template data (`templates::data`).
    pub data: minijinja::Value,
    /// The optional parts the channels need.
    pub parts: Parts,
    pub messages: Vec<Planned>,
}

impl Draft {
    /// The messages with their subject, body (the text part by email, the
    /// short part, else the text, cut to what Twilio takes, by SMS and
    /// WhatsApp) and, by email, HTML. Errors: a template is missing or
    /// fails to render (the kind, the template's name and line): none of the
    /// messages can be made.
    pub fn render(self, templates: &Templates) -> anyhow::Result<Vec<Planned>> {
        let kind = self.kind;
        let rendered = templates
            .render_data(self.locale, kind.as_ref(), &self.data, self.parts)
            .with_context(|| format!("{kind} templates"))?;
        let mut messages = self.messages;
        for message in &mut messages {
            message.subject.clone_from(&rendered.subject);
            if message.channel == Channel::Email {
                message.body.clone_from(&rendered.text);
                message.html.clone_from(&rendered.html);
            } else {
                // Twilio refuses over 1,600 characters, whatever the data.
                message.body = crate::shorten::short_body(rendered.short.as_deref().unwrap_or(&rendered.text));
            }
        }
        Ok(messages)
    }
}
