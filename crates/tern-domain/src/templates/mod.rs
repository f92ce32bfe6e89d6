//! Message templates: definitions, Liquid personalization, MJML, and the MIME a sender hands to the mail port.
//!
//! A template is validated (`TemplateDefinition::from_json`) and compiled (`TemplateDefinition::compile`)
//! when it is saved; the sender keeps the compiled form and, per message, calls `render_email` and
//! `build_mime`, or `render_webhook`. `docs/templates.md` describes the format for template authors.

mod compile;
mod engine;
mod filters;
mod html;
mod mime;
mod mjml;
mod model;
mod position;
mod render;
pub mod store;
mod values;

pub use compile::{CompiledEmail, CompiledTemplate, CompiledWebhook};
pub use mime::{Envelope, MimeError, build_mime};
pub use model::{
    EmailBody, EmailTemplate, Mailbox, TemplateDefinition, TemplateError, WEBHOOK_METHODS,
    WebhookTemplate,
};
pub use position::Position;
pub use render::{
    LinkTracker, NoTracking, RenderContext, RenderError, RenderedEmail, RenderedWebhook,
    TrackedLink, render_email, render_webhook,
};

#[cfg(test)]
mod tests;
