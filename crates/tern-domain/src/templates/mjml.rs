//! MJML to HTML with mrml, once per template save, with the Liquid tags carried through as text.

use mrml::prelude::parser::Error as ParseError;
use mrml::prelude::render::RenderOptions;

use std::collections::HashMap;

use super::html::{attributes, liquid_tags, start_tags};
use super::model::TemplateError;
use super::position::Position;

/// The field the errors of an MJML body point at.
const FIELD: &str = "body.mjml";

/// Compiles an MJML document (which may hold Liquid) to HTML whose Liquid is rendered per message. A Liquid
/// tag that mrml drops, alters or moves (one placed where MJML allows no text, such as between sections)
/// is an error that points at the tag.
pub(crate) fn mjml_to_html(source: &str) -> Result<String, TemplateError> {
    check_layout_attributes(source)?;
    let parsed = mrml::parse(source).map_err(|error| parse_error(source, &error))?;
    let options = RenderOptions {
        disable_comments: true,
        ..RenderOptions::default()
    };
    let html = parsed
        .element
        .render(&options)
        .map_err(|error| TemplateError::new(FIELD, format!("MJML does not render: {error}")))?;
    check_liquid_survived(source, &html)?;
    Ok(html)
}

/// MJML computes its layout (column widths, Outlook's fixed-width tables) from these attributes when it
/// compiles, long before Liquid runs: a Liquid value there would produce a broken layout.
fn is_layout_attribute(name: &str) -> bool {
    [
        "width", "height", "padding", "size", "spacing", "radius", "margin", "columns",
    ]
    .iter()
    .any(|part| name.contains(part))
}

/// Rejects Liquid in an MJML layout attribute, pointing at it.
fn check_layout_attributes(source: &str) -> Result<(), TemplateError> {
    for (name, attribute_text, attributes_at) in start_tags(source) {
        if !name.starts_with("mj-") {
            continue;
        }
        for attribute in attributes(attribute_text) {
            if is_layout_attribute(attribute.name) && attribute.value.contains(['{']) {
                let offset = attributes_at + attribute.range.start;
                return Err(TemplateError::new(
                    FIELD,
                    format!(
                        "Liquid in the layout attribute {}=\"{}\" of <{name}>: MJML computes the layout from it \
                         when the template is saved, so it must be a fixed value",
                        attribute.name, attribute.value
                    ),
                )
                .at(Some(Position::of_offset(source, offset))));
            }
        }
    }
    Ok(())
}

/// Every Liquid tag of the source must appear, unchanged, in the HTML (mrml may reorder attributes, so
/// only the counts are compared; a block the reordering broke fails the Liquid parse that follows).
fn check_liquid_survived(source: &str, html: &str) -> Result<(), TemplateError> {
    let mut compiled: HashMap<&str, usize> = HashMap::new();
    for (_, tag) in liquid_tags(html) {
        *compiled.entry(tag).or_default() += 1;
    }
    for (offset, tag) in liquid_tags(source) {
        match compiled.get_mut(tag).filter(|count| **count > 0) {
            Some(count) => *count -= 1,
            None => {
                return Err(TemplateError::new(
                    FIELD,
                    format!(
                        "the Liquid tag `{tag}` does not survive MJML where it is: place Liquid inside the content \
                         of <mj-text>, <mj-button>, <mj-raw>, <mj-title> or <mj-preview>, or in an attribute value \
                         such as href, src or alt; wrap block tags around sections in <mj-raw>"
                    ),
                )
                .at(Some(Position::of_offset(source, offset))));
            }
        }
    }
    Ok(())
}

fn parse_error(source: &str, error: &ParseError) -> TemplateError {
    let offset = match error {
        ParseError::UnexpectedElement { position, .. }
        | ParseError::UnexpectedToken { position, .. }
        | ParseError::MissingAttribute { position, .. }
        | ParseError::InvalidAttribute { position, .. }
        | ParseError::InvalidFormat { position, .. }
        | ParseError::IncludeLoaderError { position, .. } => Some(position.start),
        ParseError::EndOfStream { .. } => Some(source.len()),
        _ => None,
    };
    let mut position = offset.map(|offset| Position::of_offset(source, offset));
    if let ParseError::ParserError { source: cause, .. } = error {
        let at = cause.pos();
        position = Some(Position {
            line: at.row,
            column: at.col,
        });
    }
    let reason = match error {
        ParseError::IncludeLoaderError { .. } => {
            "mj-include is not supported: a template is one document".to_owned()
        }
        ParseError::ParserError { source: cause, .. } => format!("MJML does not parse: {cause}"),
        other => format!(
            "MJML does not parse: {}",
            without_position(&other.to_string())
        ),
    };
    TemplateError::new(FIELD, reason).at(position)
}

/// mrml's messages end with "at position start:end" in bytes; the error carries a line and column instead.
fn without_position(message: &str) -> &str {
    message.split(" at position ").next().unwrap_or(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liquid_in_text_and_attributes_survives() {
        let source = r#"<mjml><mj-body><mj-section><mj-column>
<mj-text>Hello {{ user.first_name | default: "there" }} {% if user.vip %}VIP{% endif %}</mj-text>
<mj-button href="https://x.test/p/{{ user.id }}">Go</mj-button>
<mj-image src="https://x.test/{{ user.id }}.png" alt="{{ user.name }}" />
</mj-column></mj-section>
<mj-raw>{% if user.vip %}</mj-raw>
<mj-section><mj-column><mj-text>Club</mj-text></mj-column></mj-section>
<mj-raw>{% endif %}</mj-raw>
</mj-body></mjml>"#;
        let html = mjml_to_html(source).unwrap();
        assert!(
            html.contains(r#"Hello {{ user.first_name | default: "there" }}"#),
            "{html}"
        );
        assert!(
            html.contains(r#"href="https://x.test/p/{{ user.id }}""#),
            "{html}"
        );
    }

    #[test]
    fn block_tags_may_wrap_sections_and_columns() {
        let source = "<mjml><mj-body>{% if a %}<mj-section>{% for i in list %}<mj-column>\
                      <mj-text>{{ i }}</mj-text></mj-column>{% endfor %}</mj-section>{% endif %}</mj-body></mjml>";
        let html = mjml_to_html(source).unwrap();
        for tag in [
            "{% if a %}",
            "{% for i in list %}",
            "{{ i }}",
            "{% endfor %}",
            "{% endif %}",
        ] {
            assert!(html.contains(tag), "{tag} in {html}");
        }
    }

    #[test]
    fn liquid_in_a_layout_attribute_is_rejected_at_its_position() {
        let source = "<mjml><mj-body>\n<mj-section><mj-column width=\"{{ w }}\"></mj-column></mj-section>\n</mj-body></mjml>";
        let error = mjml_to_html(source).unwrap_err();
        assert_eq!(error.path, "body.mjml");
        assert!(error.message.contains("width=\"{{ w }}\""), "{error}");
        assert_eq!(
            error.position,
            Some(Position {
                line: 2,
                column: 31
            }),
            "{error}"
        );
    }

    #[test]
    fn dropped_liquid_is_rejected() {
        let html = "<div>{{ a }}</div>";
        let error = check_liquid_survived("<mj-text>{{ a }} {{ b }}</mj-text>", html).unwrap_err();
        assert!(error.message.contains("{{ b }}"), "{error}");
        assert_eq!(
            error.position,
            Some(Position {
                line: 1,
                column: 18
            })
        );
    }

    #[test]
    fn malformed_mjml_is_located() {
        let error =
            mjml_to_html("<mjml>\n<mj-body>\n<mj-text>unclosed</mj-body></mjml>").unwrap_err();
        assert_eq!(error.path, "body.mjml");
        assert!(error.position.is_some(), "{error}");
        let error = mjml_to_html("<mjml><mj-body><mj-include path=\"x.mjml\" /></mj-body></mjml>")
            .unwrap_err();
        assert!(error.message.contains("mj-include"), "{error}");
    }
}
