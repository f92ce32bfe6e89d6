//! Fast scanners over HTML and Liquid source: escaping every output by default (at compile time), the
//! plain-text part (at compile time), and per message the tracked links and the open pixel. None of them
//! builds a DOM; each is one pass over the text.

use std::borrow::Cow;
use std::sync::OnceLock;

use memchr::memmem;

/// Where a Liquid tag opened with `open_at` (pointing at `{{` or `{%`) ends: the byte after `}}`/`%}`.
/// Quoted strings inside the tag may contain the closing characters.
pub(crate) fn liquid_tag_end(source: &str, open_at: usize) -> Option<usize> {
    let bytes = source.as_bytes();
    let close = if bytes.get(open_at + 1) == Some(&b'%') {
        b'%'
    } else {
        b'}'
    };
    let mut at = open_at + 2;
    while at < bytes.len() {
        match bytes[at] {
            quote @ (b'"' | b'\'') => {
                at += 1;
                while at < bytes.len() && bytes[at] != quote {
                    at += 1;
                }
            }
            byte if byte == close && bytes.get(at + 1) == Some(&b'}') => return Some(at + 2),
            _ => {}
        }
        at += 1;
    }
    None
}

/// The next `{{` or `{%` at or after `from`.
pub(crate) fn next_liquid_tag(source: &str, from: usize) -> Option<usize> {
    let bytes = source.as_bytes();
    let mut at = from;
    while let Some(found) = source[at..].find('{') {
        let open = at + found;
        if matches!(bytes.get(open + 1), Some(b'{' | b'%')) {
            return Some(open);
        }
        at = open + 1;
    }
    None
}

/// Every Liquid tag of `source` as (byte offset, text).
pub(crate) fn liquid_tags(source: &str) -> Vec<(usize, &str)> {
    let mut tags = Vec::new();
    let mut at = 0;
    while let Some(open) = next_liquid_tag(source, at) {
        let Some(end) = liquid_tag_end(source, open) else {
            break;
        };
        tags.push((open, &source[open..end]));
        at = end;
    }
    tags
}

/// Rewrites every output tag `{{ … }}` of an HTML template to end with the `escape` filter, unless it
/// already ends with `escape`, `escape_once`, or `raw` (the author's way to output trusted HTML). The inside
/// of `{% raw %}…{% endraw %}` is left alone.
pub(crate) fn escape_outputs(source: &str) -> String {
    let mut out = String::with_capacity(source.len() + source.len() / 16);
    let mut copied = 0;
    let mut at = 0;
    while let Some(open) = next_liquid_tag(source, at) {
        let Some(end) = liquid_tag_end(source, open) else {
            break;
        };
        let tag = &source[open..end];
        if tag.starts_with("{%") {
            at = if tag_name(tag) == "raw" {
                end_of_raw_block(source, end)
            } else {
                end
            };
            continue;
        }
        let inner_end = if tag.ends_with("-}}") {
            end - 3
        } else {
            end - 2
        };
        if !is_escaped_or_raw(&source[open + 2..inner_end]) {
            out.push_str(&source[copied..inner_end]);
            let spaced = source[..inner_end].ends_with(char::is_whitespace);
            out.push_str(if spaced { "| escape " } else { " | escape " });
            copied = inner_end;
        }
        at = end;
    }
    out.push_str(&source[copied..]);
    out
}

/// The name of a `{% name … %}` tag.
fn tag_name(tag: &str) -> &str {
    tag.trim_start_matches("{%")
        .trim_start_matches('-')
        .split_whitespace()
        .next()
        .unwrap_or("")
        .trim_end_matches("%}")
        .trim_end_matches('-')
}

/// Where the `{% endraw %}` closing a raw block that starts at `from` ends (or the end of the source).
fn end_of_raw_block(source: &str, from: usize) -> usize {
    let mut at = from;
    while let Some(open) = next_liquid_tag(source, at) {
        let Some(end) = liquid_tag_end(source, open) else {
            break;
        };
        if tag_name(&source[open..end]) == "endraw" {
            return end;
        }
        at = end;
    }
    source.len()
}

/// Whether an output expression's last filter is `escape`, `escape_once` or `raw`.
fn is_escaped_or_raw(expression: &str) -> bool {
    let last = last_filter(expression.trim_start_matches('-'));
    matches!(last, Some("escape" | "escape_once" | "raw"))
}

/// The name of the last filter of an output tag `{{ … }}`.
pub(crate) fn last_output_filter(tag: &str) -> Option<&str> {
    let inner = tag.strip_prefix("{{")?.strip_suffix("}}")?;
    last_filter(inner.trim_start_matches('-').trim_end_matches('-'))
}

/// The name of the last filter of `expression` (`a | f: 1 | g` → `g`), outside quoted strings.
fn last_filter(expression: &str) -> Option<&str> {
    let bytes = expression.as_bytes();
    let mut last_pipe = None;
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            quote @ (b'"' | b'\'') => {
                at += 1;
                while at < bytes.len() && bytes[at] != quote {
                    at += 1;
                }
            }
            b'|' => last_pipe = Some(at),
            _ => {}
        }
        at += 1;
    }
    let filter = expression[last_pipe? + 1..].trim_start();
    let name_end = filter
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(filter.len());
    Some(&filter[..name_end])
}

/// Escapes text for an HTML text node or a quoted attribute value.
pub(crate) fn escape_html(text: &str) -> Cow<'_, str> {
    if !text.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    Cow::Owned(out)
}

/// Decodes the character references of an HTML text or attribute value (named ones Tern's own output and
/// mrml's use, and every numeric one); an unknown reference stays as written.
pub(crate) fn decode_entities(text: &str) -> Cow<'_, str> {
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        match rest
            .find(';')
            .filter(|&semi| semi <= 10)
            .and_then(|semi| decode_entity(&rest[1..semi]).map(|c| (c, semi)))
        {
            Some((character, semi)) => {
                out.push(character);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn decode_entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some('\u{a0}'),
        "zwnj" => Some('\u{200c}'),
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

/// Whether `url` is an absolute http(s) link.
pub(crate) fn is_web_link(url: &str) -> bool {
    let scheme_end = url.find(':').unwrap_or(0);
    let scheme = &url[..scheme_end];
    (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
        && url[scheme_end..].starts_with("://")
}

/// One tag of an HTML document, as the scanners see it.
struct Tag<'h> {
    /// Lowercased only when it is not already: most HTML is.
    name: Cow<'h, str>,
    closing: bool,
    /// The byte after `>`.
    end: usize,
    /// The attributes' text, between the name and `>`.
    attributes: &'h str,
    /// Where `attributes` starts in the document.
    attributes_at: usize,
}

/// Reads the tag starting at `open` (a `<`), or `None` when that `<` does not open a tag (text like
/// `a < b`, or a comment or doctype, which the callers skip differently).
fn read_tag(html: &str, open: usize) -> Option<Tag<'_>> {
    let bytes = html.as_bytes();
    let mut at = open + 1;
    let closing = bytes.get(at) == Some(&b'/');
    if closing {
        at += 1;
    }
    let name_start = at;
    while at < bytes.len() && (bytes[at].is_ascii_alphanumeric() || bytes[at] == b'-') {
        at += 1;
    }
    if at == name_start || !bytes[name_start].is_ascii_alphabetic() {
        return None;
    }
    let name = &html[name_start..at];
    let attributes_at = at;
    let mut quote = None;
    while at < bytes.len() {
        match (bytes[at], quote) {
            (b'"' | b'\'', None) => quote = Some(bytes[at]),
            (byte, Some(open_quote)) if byte == open_quote => quote = None,
            (b'>', None) => break,
            _ => {}
        }
        at += 1;
    }
    let end = (at + 1).min(html.len());
    let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    };
    Some(Tag {
        name,
        closing,
        end,
        attributes: &html[attributes_at..at.min(html.len())],
        attributes_at,
    })
}

/// One attribute of a tag: its name, its value, the value's byte range in the attribute text, and whether
/// the value was quoted.
pub(crate) struct Attribute<'a> {
    pub name: &'a str,
    pub value: &'a str,
    pub range: std::ops::Range<usize>,
    pub quoted: bool,
}

/// The attributes (with a value) of a tag's attribute text, in order.
pub(crate) fn attributes(attributes: &str) -> impl Iterator<Item = Attribute<'_>> {
    let bytes = attributes.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        loop {
            while at < bytes.len() && (bytes[at].is_ascii_whitespace() || bytes[at] == b'/') {
                at += 1;
            }
            if at >= bytes.len() {
                return None;
            }
            let name_start = at;
            while at < bytes.len()
                && !matches!(bytes[at], b'=' | b'>' | b'/')
                && !bytes[at].is_ascii_whitespace()
            {
                at += 1;
            }
            let name = &attributes[name_start..at];
            while at < bytes.len() && bytes[at].is_ascii_whitespace() {
                at += 1;
            }
            if bytes.get(at) != Some(&b'=') {
                if at == name_start {
                    at += 1;
                }
                continue;
            }
            at += 1;
            while at < bytes.len() && bytes[at].is_ascii_whitespace() {
                at += 1;
            }
            let (range, quoted) = match bytes.get(at) {
                Some(&quote @ (b'"' | b'\'')) => {
                    let start = at + 1;
                    let end = attributes[start..]
                        .find(quote as char)
                        .map_or(bytes.len(), |i| start + i);
                    at = (end + 1).min(bytes.len());
                    (start..end, true)
                }
                _ => {
                    let start = at;
                    while at < bytes.len() && !bytes[at].is_ascii_whitespace() && bytes[at] != b'>'
                    {
                        at += 1;
                    }
                    (start..at, false)
                }
            };
            return Some(Attribute {
                name,
                value: &attributes[range.clone()],
                range,
                quoted,
            });
        }
    })
}

/// The value of attribute `wanted` in a tag's attribute text, with its byte range there and whether it
/// was quoted.
fn attribute<'a>(
    attributes_text: &'a str,
    wanted: &str,
) -> Option<(&'a str, std::ops::Range<usize>, bool)> {
    attributes(attributes_text)
        .find(|attribute| attribute.name.eq_ignore_ascii_case(wanted))
        .map(|attribute| (attribute.value, attribute.range, attribute.quoted))
}

/// Every start tag of a document with its name and where its attribute text starts, in order.
pub(crate) fn start_tags(html: &str) -> impl Iterator<Item = (String, &str, usize)> {
    let mut at = 0;
    std::iter::from_fn(move || {
        while let Some(found) = html[at..].find('<') {
            let open = at + found;
            at = open + 1;
            if let Some(tag) = read_tag(html, open).filter(|tag| !tag.closing) {
                at = tag.end;
                return Some((tag.name.into_owned(), tag.attributes, tag.attributes_at));
            }
        }
        None
    })
}

static COMMENT_END: OnceLock<memmem::Finder<'static>> = OnceLock::new();
static WEB: OnceLock<memmem::Finder<'static>> = OnceLock::new();

/// A substring searcher built once: building one costs more than a short search.
fn finder(
    slot: &'static OnceLock<memmem::Finder<'static>>,
    needle: &'static str,
) -> &'static memmem::Finder<'static> {
    slot.get_or_init(|| memmem::Finder::new(needle.as_bytes()))
}

/// A link the sender rewrote to its click URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RewrittenLink {
    pub original: String,
    pub click_url: String,
}

/// Rewrites the `href` of every `<a>` whose target is an http(s) URL not in `direct` to what `click_url`
/// returns for it (given its index among the rewritten links and the decoded original URL; `None` keeps it).
pub(crate) fn rewrite_links(
    html: &str,
    direct: &[&str],
    mut click_url: impl FnMut(usize, &str) -> Option<String>,
) -> (String, Vec<RewrittenLink>) {
    let mut out = String::with_capacity(html.len() + html.len() / 8);
    let mut links = Vec::new();
    let mut copied = 0;
    let mut at = 0;
    let bytes = html.as_bytes();
    let comment_end = finder(&COMMENT_END, "-->");
    // memchr finds each `<` fast; only anchors and comments need a closer look.
    while let Some(found) = memchr::memchr(b'<', &bytes[at..]) {
        let open = at + found;
        if bytes[open + 1..].starts_with(b"!--") {
            at = comment_end
                .find(&bytes[open..])
                .map_or(html.len(), |close| open + close + 3);
            continue;
        }
        let is_anchor = matches!(bytes.get(open + 1), Some(b'a' | b'A'))
            && bytes.get(open + 2).is_some_and(|b| b.is_ascii_whitespace());
        if !is_anchor {
            at = open + 1;
            continue;
        }
        let Some(tag) = read_tag(html, open) else {
            at = open + 1;
            continue;
        };
        if let Some((value, range, quoted)) = attribute(tag.attributes, "href") {
            let original = decode_entities(value.trim());
            let click = (is_web_link(&original) && !direct.contains(&original.as_ref()))
                .then(|| click_url(links.len(), &original))
                .flatten();
            if let Some(click) = click {
                let start = tag.attributes_at + range.start;
                let end = tag.attributes_at + range.end;
                out.push_str(&html[copied..start]);
                if !quoted {
                    out.push('"');
                }
                out.push_str(&escape_html(&click));
                if !quoted {
                    out.push('"');
                }
                copied = end;
                links.push(RewrittenLink {
                    original: original.into_owned(),
                    click_url: click,
                });
            }
        }
        at = tag.end;
    }
    out.push_str(&html[copied..]);
    (out, links)
}

/// Replaces, in a plain-text part, each URL that `links` rewrote in the HTML part with its click URL.
pub(crate) fn rewrite_text_links(text: &str, links: &[RewrittenLink]) -> String {
    if links.is_empty() {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + links.len() * 64);
    let mut copied = 0;
    let mut at = 0;
    let web = finder(&WEB, "http");
    while let Some(found) = web.find(&text.as_bytes()[at..]) {
        let start = at + found;
        let rest = &text[start..];
        let end = start
            + rest
                .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | ')' | ']'))
                .unwrap_or(rest.len());
        let candidate = &text[start..end];
        // A sentence may end right after a URL: try it without trailing punctuation too.
        let trimmed = candidate.trim_end_matches(['.', ',', ';', ':', '!', '?']);
        let matched = links
            .iter()
            .find(|link| link.original == candidate)
            .map(|link| (link, candidate.len()))
            .or_else(|| {
                links
                    .iter()
                    .find(|link| link.original == trimmed)
                    .map(|link| (link, trimmed.len()))
            });
        match matched {
            Some((link, length)) if is_web_link(candidate) => {
                out.push_str(&text[copied..start]);
                out.push_str(&link.click_url);
                copied = start + length;
                at = copied;
            }
            _ => at = start + 4,
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// Inserts `snippet` right before the last `</body>`, or at the end when there is none.
pub(crate) fn insert_before_body_close(html: &mut String, snippet: &str) {
    let at = rfind_ignore_ascii_case(html, "</body").unwrap_or(html.len());
    html.insert_str(at, snippet);
}

/// Inserts `snippet` right after the opening `<body …>` tag, or at the start when there is none.
pub(crate) fn insert_after_body_open(html: &str, snippet: &str) -> String {
    let mut at = 0;
    let mut insert_at = 0;
    while let Some(found) = html[at..].find('<') {
        let open = at + found;
        if let Some(tag) = read_tag(html, open).filter(|tag| !tag.closing && tag.name == "body") {
            insert_at = tag.end;
            break;
        }
        at = open + 1;
    }
    let mut out = String::with_capacity(html.len() + snippet.len());
    out.push_str(&html[..insert_at]);
    out.push_str(snippet);
    out.push_str(&html[insert_at..]);
    out
}

fn rfind_ignore_ascii_case(haystack: &str, needle: &str) -> Option<usize> {
    let (hay, needle) = (haystack.as_bytes(), needle.as_bytes());
    (0..=hay.len().checked_sub(needle.len())?)
        .rev()
        .find(|&start| hay[start..start + needle.len()].eq_ignore_ascii_case(needle))
}

/// Tags whose content is not text a reader sees.
const INVISIBLE: &[&str] = &["head", "style", "script", "title", "template", "noscript"];
/// Tags that end a line in the text part.
const LINE_BREAKING: &[&str] = &[
    "br", "div", "tr", "li", "hr", "section", "header", "footer", "article",
];
/// Tags that stand apart by an empty line in the text part.
const PARAGRAPHS: &[&str] = &[
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "ul",
    "ol",
    "blockquote",
];

/// The plain-text rendering of an HTML template whose Liquid tags are kept as they are: visible text with
/// its line structure, each link written `label (url)`, hidden elements (`display:none`, the head, styles)
/// and comments (including Outlook's conditional ones) left out.
pub(crate) fn html_to_text(html: &str) -> String {
    let mut text = TextWriter::default();
    let mut link: Option<String> = None;
    let mut link_label_start = 0;
    let mut at = 0;
    let bytes = html.as_bytes();
    while at < html.len() {
        match bytes[at] {
            b'{' if matches!(bytes.get(at + 1), Some(b'{' | b'%')) => {
                let end = liquid_tag_end(html, at).unwrap_or(html.len());
                text.push_verbatim(&html[at..end]);
                at = end;
            }
            b'<' if html[at..].starts_with("<!") => {
                let close = if html[at..].starts_with("<!--") {
                    "-->"
                } else {
                    ">"
                };
                at = html[at..]
                    .find(close)
                    .map_or(html.len(), |i| at + i + close.len());
            }
            b'<' => match read_tag(html, at) {
                None => {
                    text.push_text("<");
                    at += 1;
                }
                Some(tag) => {
                    at = tag.end;
                    let name = tag.name.as_ref();
                    if tag.closing {
                        if name == "a" {
                            // Links side by side in HTML would run together in text.
                            text.pending_space = true;
                            if let Some(href) = link.take() {
                                let label = text.since(link_label_start);
                                if label.trim() != href && !label.trim().is_empty() {
                                    text.push_text(&format!(" ({href})"));
                                } else if label.trim().is_empty() {
                                    text.push_text(&href);
                                }
                                text.pending_space = true;
                            }
                        }
                    } else if INVISIBLE.contains(&name) || is_hidden(tag.attributes) {
                        at = end_of_element(html, at, name);
                        continue;
                    } else if name == "a" {
                        link = attribute(tag.attributes, "href")
                            .map(|(value, _, _)| decode_entities(value.trim()).into_owned())
                            .filter(|href| !href.starts_with('#') && !href.is_empty());
                        link_label_start = text.len();
                    } else if name == "img"
                        && let Some((alt, _, _)) = attribute(tag.attributes, "alt")
                    {
                        text.push_text(&decode_entities(alt));
                    }
                    if PARAGRAPHS.contains(&name) {
                        text.line_break();
                        text.line_break();
                    } else if LINE_BREAKING.contains(&name) {
                        text.line_break();
                    } else if matches!(name, "td" | "th") {
                        text.push_text(" ");
                    }
                }
            },
            _ => {
                let end = html[at..].find(['<', '{']).map_or(html.len(), |i| at + i);
                let end = if end == at { at + 1 } else { end };
                text.push_text(&decode_entities(&html[at..end]));
                at = end;
            }
        }
    }
    text.finish()
}

/// Whether a tag's inline style hides it.
fn is_hidden(attributes: &str) -> bool {
    attribute(attributes, "style").is_some_and(|(style, _, _)| {
        style.split(';').any(|declaration| {
            let mut parts = declaration.splitn(2, ':');
            let property = parts.next().unwrap_or("").trim();
            let value = parts.next().unwrap_or("").trim();
            property.eq_ignore_ascii_case("display") && value.eq_ignore_ascii_case("none")
        })
    })
}

/// The byte after the element `name` whose content starts at `from` closes (nesting counted).
fn end_of_element(html: &str, from: usize, name: &str) -> usize {
    let mut depth = 1;
    let mut at = from;
    while let Some(found) = html[at..].find('<') {
        let open = at + found;
        at = open + 1;
        if let Some(tag) = read_tag(html, open).filter(|tag| tag.name == name) {
            at = tag.end;
            let self_closing = tag.attributes.trim_end().ends_with('/');
            if tag.closing {
                depth -= 1;
                if depth == 0 {
                    return tag.end;
                }
            } else if !self_closing {
                depth += 1;
            }
        }
    }
    html.len()
}

/// Builds the text part: collapses whitespace the way a browser does, keeps at most one empty line.
#[derive(Default)]
struct TextWriter {
    out: String,
    pending_space: bool,
    pending_breaks: usize,
}

impl TextWriter {
    fn len(&self) -> usize {
        self.out.len()
    }

    fn since(&self, start: usize) -> &str {
        &self.out[start.min(self.out.len())..]
    }

    fn push_text(&mut self, text: &str) {
        for word_or_space in split_keeping_whitespace(text) {
            if word_or_space.chars().all(char::is_whitespace) {
                self.pending_space = true;
            } else {
                self.push_verbatim(word_or_space);
            }
        }
    }

    fn push_verbatim(&mut self, text: &str) {
        if self.pending_breaks > 0 && !self.out.is_empty() {
            self.out.push_str(if self.pending_breaks > 1 {
                "\n\n"
            } else {
                "\n"
            });
        } else if self.pending_space && !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push(' ');
        }
        self.pending_breaks = 0;
        self.pending_space = false;
        self.out.push_str(text);
    }

    fn line_break(&mut self) {
        self.pending_breaks += 1;
        self.pending_space = false;
    }

    fn finish(self) -> String {
        let mut out = self.out;
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    }
}

/// Splits text into runs of whitespace (including non-breaking spaces) and runs of everything else.
fn split_keeping_whitespace(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let first = rest.chars().next()?;
        let is_space = first.is_whitespace();
        let end = rest
            .find(|c: char| c.is_whitespace() != is_space)
            .unwrap_or(rest.len());
        let (run, tail) = rest.split_at(end);
        rest = tail;
        Some(run)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_gain_escape_unless_raw_or_already_escaped() {
        let source = "<p>{{ name }}</p><a href=\"{{ url | append: '|}}' }}\">{{- html | raw -}}</a>\
                      {{ x | escape }}{% if a %}{{ b | upcase }}{% endif %}{% raw %}{{ kept }}{% endraw %}";
        assert_eq!(
            escape_outputs(source),
            "<p>{{ name | escape }}</p><a href=\"{{ url | append: '|}}' | escape }}\">{{- html | raw -}}</a>\
             {{ x | escape }}{% if a %}{{ b | upcase | escape }}{% endif %}{% raw %}{{ kept }}{% endraw %}"
        );
    }

    #[test]
    fn entities_decode() {
        assert_eq!(
            decode_entities("a&amp;b&lt;&#39;&#x41;&nbsp;&bogus;"),
            "a&b<'A\u{a0}&bogus;"
        );
    }

    #[test]
    fn links_are_rewritten_except_direct_ones() {
        let html = "<a href=\"https://x.test/a?b=1&amp;c=2\">A</a> <a href='mailto:m@x.test'>M</a>\
                    <a class=\"btn\" href=\"#top\">T</a><A HREF=https://x.test/u>U</A><a href=\"https://x.test/unsub\">S</a>\
                    <!-- <a href=\"https://x.test/c\">C</a> --><area href=\"https://x.test/area\">";
        let (out, links) = rewrite_links(html, &["https://x.test/unsub"], |index, url| {
            Some(format!("https://t.test/{index}?u={url}"))
        });
        assert_eq!(
            out,
            "<a href=\"https://t.test/0?u=https://x.test/a?b=1&amp;c=2\">A</a> <a href='mailto:m@x.test'>M</a>\
             <a class=\"btn\" href=\"#top\">T</a><A HREF=\"https://t.test/1?u=https://x.test/u\">U</A><a href=\"https://x.test/unsub\">S</a>\
             <!-- <a href=\"https://x.test/c\">C</a> --><area href=\"https://x.test/area\">"
        );
        let originals: Vec<_> = links.iter().map(|link| link.original.as_str()).collect();
        assert_eq!(originals, ["https://x.test/a?b=1&c=2", "https://x.test/u"]);
    }

    #[test]
    fn text_links_follow_the_html_ones() {
        let links = vec![RewrittenLink {
            original: "https://x.test/a".into(),
            click_url: "https://t.test/0".into(),
        }];
        let text = "Read (https://x.test/a). Or https://x.test/a. Not https://x.test/ab or https://x.test/unsub";
        assert_eq!(
            rewrite_text_links(text, &links),
            "Read (https://t.test/0). Or https://t.test/0. Not https://x.test/ab or https://x.test/unsub"
        );
    }

    #[test]
    fn text_keeps_liquid_and_visible_structure() {
        let html = "<html><head><title>T</title><style>p{}</style></head><body>\
                    <div style=\"display:none\">hidden <div>deep</div> preview</div>\
                    <!--[if mso]><table><tr><td>outlook</td></tr></table><![endif]-->\
                    <h1>Hello {{ user.first_name | default: \"there\" }}</h1>\
                    <p>Fish &amp; chips   on\n  <b>{% if a < b %}sale{% endif %}</b></p>\
                    <p><a href=\"https://x.test/a\">Read more</a> <a href=\"{{ unsubscribe_url }}\">Unsubscribe</a>\
                    <a href=\"https://x.test/b\">https://x.test/b</a></p><img alt=\"Logo\" src=\"l.png\"></body></html>";
        assert_eq!(
            html_to_text(html),
            "Hello {{ user.first_name | default: \"there\" }}\n\n\
             Fish & chips on {% if a < b %}sale{% endif %}\n\n\
             Read more (https://x.test/a) Unsubscribe ({{ unsubscribe_url }}) https://x.test/b\n\nLogo\n"
        );
    }

    #[test]
    fn body_insertions() {
        let mut html = String::from("<html><BODY class=\"x\"><p>hi</p></BODY></html>");
        insert_before_body_close(&mut html, "<img>");
        assert_eq!(html, "<html><BODY class=\"x\"><p>hi</p><img></BODY></html>");
        assert_eq!(
            insert_after_body_open(&html, "<i>"),
            "<html><BODY class=\"x\"><i><p>hi</p><img></BODY></html>"
        );
        assert_eq!(insert_after_body_open("<p>x</p>", "<i>"), "<i><p>x</p>");
    }
}
