//! The Liquid engine Tern renders with: liquid's standard tags and filters, Tern's own filters, a runtime
//! where a missing variable is nil (or, in strict mode, a recorded failure), and syntax errors located by
//! line and column.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::OnceLock;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use liquid_core::model::{KString, KStringCow, KStringRef, ScalarCow, Value, ValueCow};
use liquid_core::parser::{ParseBlock, ParseFilter, ParseTag};
use liquid_core::runtime::{PartialStore, Registers, Renderable, RuntimeBuilder};
use liquid_core::{Language, Object, Runtime, Template, ValueView};
use liquid_lib::stdlib;

use super::filters;
use super::position::Position;

/// A Liquid template parsed once and rendered many times.
#[derive(Debug)]
pub(crate) struct LiquidTemplate {
    template: Template,
    /// The source's length: a render's output is about as long, so its buffer starts there.
    size_hint: usize,
}

/// Why a piece of Liquid source does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub message: String,
    pub position: Option<Position>,
}

/// Why one render failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RenderFailure {
    /// Strict mode met a variable the data does not have (its dotted path).
    MissingVariable(String),
    /// Anything else: a filter given a bad argument, a loop item without the property asked for…
    Liquid(String),
}

/// What a render sees besides its variables: the recipient's time zone and the instant of the send.
pub(crate) struct RenderClock {
    pub time_zone: TimeZone,
    pub now: Timestamp,
}

thread_local! {
    // Filters receive only the runtime, which cannot carry typed state through liquid's stack frames; the
    // render is synchronous, so the clock of the message being rendered lives here for its duration.
    static CLOCK: RefCell<Option<RenderClock>> = const { RefCell::new(None) };
}

/// Runs `body` with `clock` visible to the `date` filter.
pub(crate) fn with_clock<T>(clock: RenderClock, body: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            CLOCK.with(|slot| slot.borrow_mut().take());
        }
    }
    CLOCK.with(|slot| *slot.borrow_mut() = Some(clock));
    let _reset = Reset;
    body()
}

/// The clock of the render in progress, or UTC and the current instant outside one.
pub(crate) fn current_clock<T>(read: impl FnOnce(&TimeZone, Timestamp) -> T) -> T {
    CLOCK.with(|slot| match slot.borrow().as_ref() {
        Some(clock) => read(&clock.time_zone, clock.now),
        None => read(&TimeZone::UTC, Timestamp::now()),
    })
}

impl LiquidTemplate {
    /// Parses `source`; the error locates the problem within `source`.
    pub(crate) fn parse(source: &str) -> Result<Self, SyntaxError> {
        match liquid_core::parser::parse(source, language()) {
            Ok(elements) => Ok(Self {
                template: Template::new(elements),
                size_hint: source.len(),
            }),
            Err(error) => Err(syntax_error(source, &error)),
        }
    }

    /// Renders with `globals`, appending to `out`.
    pub(crate) fn render_into(
        &self,
        out: &mut Vec<u8>,
        globals: &Object,
        strict: bool,
    ) -> Result<(), RenderFailure> {
        let inner = RuntimeBuilder::new().set_globals(globals).build();
        let runtime = LenientRuntime {
            inner,
            strict,
            missing: RefCell::new(None),
        };
        match self.template.render_to(out, &runtime) {
            Ok(()) => Ok(()),
            Err(error) => Err(match runtime.missing.into_inner() {
                Some(path) => RenderFailure::MissingVariable(path),
                None => RenderFailure::Liquid(render_reason(&error.to_string())),
            }),
        }
    }

    /// Renders with `globals` into a new string.
    pub(crate) fn render(&self, globals: &Object, strict: bool) -> Result<String, RenderFailure> {
        let mut out = Vec::with_capacity(self.size_hint + self.size_hint / 4);
        self.render_into(&mut out, globals, strict)?;
        Ok(into_string(out))
    }
}

/// Liquid writes only UTF-8 (its inputs are `str`s), so this conversion does not fail in practice; a lossy
/// conversion keeps it total anyway.
pub(crate) fn into_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
}

/// liquid's messages start with "liquid: " and go on with a backtrace; the first line is the reason.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message);
    line.strip_prefix("liquid: ")
        .unwrap_or(line)
        .trim()
        .to_owned()
}

fn syntax_error(source: &str, error: &liquid_core::Error) -> SyntaxError {
    let text = error.to_string();
    let position = pest_position(&text).or_else(|| named_position(source, &text));
    let message = describe(&text);
    SyntaxError { message, position }
}

/// pest's errors carry ` --> line:column`.
fn pest_position(text: &str) -> Option<Position> {
    let start = text.find("--> ")? + 4;
    let rest = &text[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == ':'))
        .unwrap_or(rest.len());
    let (line, column) = rest[..end].split_once(':')?;
    Some(Position {
        line: line.parse().ok()?,
        column: column.parse().ok()?,
    })
}

/// Errors about an unknown filter or tag name it in their context but carry no position: point at the
/// first place the source uses that name.
fn named_position(source: &str, text: &str) -> Option<Position> {
    let name = context_value(text, "requested filter")
        .or_else(|| context_value(text, "requested tag"))
        .or_else(|| context_value(text, "tag"))?;
    let offset = source.find(name)?;
    Some(Position::of_offset(source, offset))
}

fn context_value<'t>(text: &'t str, key: &str) -> Option<&'t str> {
    text.lines().find_map(|line| {
        let line = line.trim();
        let value = line.strip_prefix(key)?.strip_prefix('=')?;
        (!value.is_empty()).then_some(value)
    })
}

/// A one-line reason: pest's explanation, or liquid's first line and the context that names the culprit.
fn describe(text: &str) -> String {
    if let Some(explanation) = text.lines().find_map(|line| line.trim().strip_prefix("= ")) {
        return explanation.trim_end_matches('.').to_owned();
    }
    let reason = first_line(text);
    for key in ["requested filter", "requested tag", "tag"] {
        if let Some(value) = context_value(text, key) {
            return format!("{reason} `{value}`");
        }
    }
    reason
}

/// A one-line reason for a failed render: liquid's first line and the context lines that explain it
/// (`argument=length, cause=Whole number expected, filter=truncate : "a"`), without the long lists.
fn render_reason(text: &str) -> String {
    let details: Vec<&str> = text
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|line| line.contains('=') && !line.starts_with("available"))
        .collect();
    let reason = first_line(text);
    if details.is_empty() {
        reason
    } else {
        format!("{reason} ({})", details.join(", "))
    }
}

/// A runtime that answers a lookup of a missing variable with nil, or, in strict mode, fails the render
/// and remembers which variable it was.
struct LenientRuntime<R> {
    inner: R,
    strict: bool,
    missing: RefCell<Option<String>>,
}

impl<R: Runtime> Runtime for LenientRuntime<R> {
    fn partials(&self) -> &dyn PartialStore {
        self.inner.partials()
    }

    fn name(&self) -> Option<KStringRef<'_>> {
        self.inner.name()
    }

    fn roots(&self) -> BTreeSet<KStringCow<'_>> {
        self.inner.roots()
    }

    fn try_get(&self, path: &[ScalarCow<'_>]) -> Option<ValueCow<'_>> {
        self.inner.try_get(path)
    }

    fn get(&self, path: &[ScalarCow<'_>]) -> liquid_core::Result<ValueCow<'_>> {
        // liquid's `get` copies the value it finds; `try_get` lends it, which is all an output needs.
        if let Some(value) = self.inner.try_get(path) {
            return Ok(value);
        }
        match self.inner.get(path) {
            Ok(value) => Ok(value),
            Err(_) if !self.strict => Ok(ValueCow::Owned(Value::Nil)),
            Err(error) => {
                let dotted = path
                    .iter()
                    .map(|part| part.to_kstr().into_owned())
                    .collect::<Vec<_>>();
                self.missing
                    .borrow_mut()
                    .get_or_insert_with(|| dotted.join("."));
                Err(error)
            }
        }
    }

    fn set_global(&self, name: KString, value: Value) -> Option<Value> {
        self.inner.set_global(name, value)
    }

    fn set_index(&self, name: KString, value: Value) -> Option<Value> {
        self.inner.set_index(name, value)
    }

    fn get_index<'a>(&'a self, name: &str) -> Option<ValueCow<'a>> {
        self.inner.get_index(name)
    }

    fn registers(&self) -> &Registers {
        self.inner.registers()
    }
}

/// The tags, blocks and filters a Tern template may use: liquid's standard library without the tags that
/// load other files (`include`, `render`), with Tern's `date`, `json` and `raw`.
fn language() -> &'static Language {
    static LANGUAGE: OnceLock<Language> = OnceLock::new();
    LANGUAGE.get_or_init(|| {
        let mut language = Language::empty();
        for tag in standard_tags() {
            let name = tag.reflection().tag().to_owned();
            language.tags.register(name, tag);
        }
        for block in standard_blocks() {
            let name = block.reflection().start_tag().to_owned();
            language.blocks.register(name, block);
        }
        for filter in standard_filters()
            .into_iter()
            .chain(filters::tern_filters())
        {
            let name = filter.reflection().name().to_owned();
            language.filters.register(name, filter);
        }
        language
    })
}

fn standard_tags() -> Vec<Box<dyn ParseTag>> {
    vec![
        Box::new(stdlib::AssignTag),
        Box::new(stdlib::BreakTag),
        Box::new(stdlib::ContinueTag),
        Box::new(stdlib::CycleTag),
        Box::new(stdlib::IncrementTag),
        Box::new(stdlib::DecrementTag),
    ]
}

fn standard_blocks() -> Vec<Box<dyn ParseBlock>> {
    vec![
        Box::new(stdlib::RawBlock),
        Box::new(stdlib::IfBlock),
        Box::new(stdlib::UnlessBlock),
        Box::new(stdlib::IfChangedBlock),
        Box::new(stdlib::ForBlock),
        Box::new(stdlib::TableRowBlock),
        Box::new(stdlib::CommentBlock),
        Box::new(stdlib::CaptureBlock),
        Box::new(stdlib::CaseBlock),
    ]
}

/// liquid's standard filters except `date`, which Tern replaces with one that knows the recipient's zone.
fn standard_filters() -> Vec<Box<dyn ParseFilter>> {
    vec![
        Box::new(stdlib::Abs),
        Box::new(stdlib::Append),
        Box::new(stdlib::AtLeast),
        Box::new(stdlib::AtMost),
        Box::new(stdlib::Capitalize),
        Box::new(stdlib::Ceil),
        Box::new(stdlib::Compact),
        Box::new(stdlib::Concat),
        Box::new(stdlib::Default),
        Box::new(stdlib::DividedBy),
        Box::new(stdlib::Downcase),
        Box::new(stdlib::Escape),
        Box::new(stdlib::EscapeOnce),
        Box::new(stdlib::First),
        Box::new(stdlib::Floor),
        Box::new(stdlib::Join),
        Box::new(stdlib::Last),
        Box::new(stdlib::Lstrip),
        Box::new(stdlib::Map),
        Box::new(stdlib::Minus),
        Box::new(stdlib::Modulo),
        Box::new(stdlib::NewlineToBr),
        Box::new(stdlib::Plus),
        Box::new(stdlib::Prepend),
        Box::new(stdlib::Remove),
        Box::new(stdlib::RemoveFirst),
        Box::new(stdlib::Replace),
        Box::new(stdlib::ReplaceFirst),
        Box::new(stdlib::Reverse),
        Box::new(stdlib::Round),
        Box::new(stdlib::Rstrip),
        Box::new(stdlib::Size),
        Box::new(stdlib::Slice),
        Box::new(stdlib::Sort),
        Box::new(stdlib::SortNatural),
        Box::new(stdlib::Split),
        Box::new(stdlib::Strip),
        Box::new(stdlib::StripHtml),
        Box::new(stdlib::StripNewlines),
        Box::new(stdlib::Times),
        Box::new(stdlib::Truncate),
        Box::new(stdlib::TruncateWords),
        Box::new(stdlib::Uniq),
        Box::new(stdlib::Upcase),
        Box::new(stdlib::UrlDecode),
        Box::new(stdlib::UrlEncode),
        Box::new(stdlib::Where),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn globals(json: serde_json::Value) -> Object {
        match super::super::values::to_liquid(&json) {
            Value::Object(object) => object,
            other => panic!("not an object: {other:?}"),
        }
    }

    #[test]
    fn missing_variables_are_nil_unless_strict() {
        let template = LiquidTemplate::parse("Hi {{ user.name }}{{ nope }}!").unwrap();
        let data = globals(serde_json::json!({"user": {}}));
        assert_eq!(template.render(&data, false).unwrap(), "Hi !");
        assert_eq!(
            template.render(&data, true),
            Err(RenderFailure::MissingVariable("user.name".into()))
        );
    }

    #[test]
    fn default_applies_to_a_missing_variable() {
        let template = LiquidTemplate::parse("{{ user.name | default: 'friend' }}").unwrap();
        let data = globals(serde_json::json!({"user": {}}));
        assert_eq!(template.render(&data, false).unwrap(), "friend");
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let error = LiquidTemplate::parse("line one\nHello {{ name | }}").unwrap_err();
        eprintln!("{error:?}");
        assert_eq!(
            error.position,
            Some(Position {
                line: 2,
                column: 17
            }),
            "{error:?}"
        );
        let error = LiquidTemplate::parse("a\n  {{ name | shout }}").unwrap_err();
        assert!(error.message.contains("shout"), "{error:?}");
        assert_eq!(
            error.position,
            Some(Position {
                line: 2,
                column: 13
            }),
            "{error:?}"
        );
    }

    #[test]
    fn file_loading_tags_are_not_available() {
        assert!(LiquidTemplate::parse("{% include 'x' %}").is_err());
    }
}
