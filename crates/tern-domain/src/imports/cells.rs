//! One cell of an import as a trait value: its type inferred from the text, or forced by the column.
//!
//! Inference is deliberately cautious, so that nothing that looks like a number by accident loses
//! information: `007` and `+15551234` stay text (a leading zero or a plus sign usually marks a code or a
//! phone number), as do integers beyond 64 bits. Dates stay ISO 8601 text, normalised: a date as
//! `YYYY-MM-DD`, a date-time as RFC 3339 in UTC.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use serde_json::{Number, Value};

/// The type a `name:type` header suffix forces on a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CellType {
    String,
    Number,
    Bool,
    Date,
}

impl CellType {
    pub fn parse(text: &str) -> Option<CellType> {
        match text.to_ascii_lowercase().as_str() {
            "string" => Some(CellType::String),
            "number" => Some(CellType::Number),
            "bool" => Some(CellType::Bool),
            "date" => Some(CellType::Date),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CellType::String => "string",
            CellType::Number => "number",
            CellType::Bool => "bool",
            CellType::Date => "date",
        }
    }
}

impl fmt::Display for CellType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The value of a non-empty, trimmed cell whose column has no forced type.
pub fn infer(text: &str) -> Value {
    if let Some(boolean) = plain_bool(text) {
        return Value::Bool(boolean);
    }
    if let Some(number) = plain_number(text) {
        return Value::Number(number);
    }
    if let Some(date) = iso_date_or_time(text) {
        return Value::String(date);
    }
    Value::String(text.to_string())
}

/// The value of a non-empty, trimmed cell of a column forced to `kind`, or why it does not fit (a phrase
/// completing "the value …").
pub fn convert(text: &str, kind: CellType) -> Result<Value, String> {
    match kind {
        CellType::String => Ok(Value::String(text.to_string())),
        CellType::Number => any_number(text)
            .map(Value::Number)
            .ok_or_else(|| format!("{text:?} is not a number")),
        CellType::Bool => any_bool(text)
            .map(Value::Bool)
            .ok_or_else(|| format!("{text:?} is not a boolean (true or false)")),
        CellType::Date => iso_date_or_time(text)
            .map(Value::String)
            .ok_or_else(|| format!("{text:?} is not an ISO 8601 date or date-time")),
    }
}

fn plain_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// `true`/`false`, `yes`/`no`, `1`/`0`, in any case: what spreadsheets export.
fn any_bool(text: &str) -> Option<bool> {
    plain_bool(text).or_else(|| match text.to_ascii_lowercase().as_str() {
        "yes" | "1" => Some(true),
        "no" | "0" => Some(false),
        _ => None,
    })
}

/// `-12`, `0`, `3.25`: an optional minus, digits without a leading zero, an optional fraction.
fn plain_number(text: &str) -> Option<Number> {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || (whole.len() > 1 && whole.starts_with('0')) {
        return None;
    }
    match fraction {
        None => text.parse::<i64>().ok().map(Number::from),
        Some(fraction) if digits(fraction) => finite(text),
        Some(_) => None,
    }
}

/// Any decimal a forced number column may hold: leading zeros, a plus sign, an exponent.
fn any_number(text: &str) -> Option<Number> {
    if let Ok(integer) = text.parse::<i64>() {
        return Some(Number::from(integer));
    }
    // `f64::from_str` also reads `inf` and `NaN`, which JSON cannot hold; only digits may start a number.
    let starts_like_a_number = text
        .trim_start_matches(['+', '-'])
        .starts_with(|c: char| c.is_ascii_digit() || c == '.');
    if !starts_like_a_number {
        return None;
    }
    finite(text)
}

fn finite(text: &str) -> Option<Number> {
    text.parse::<f64>().ok().and_then(Number::from_f64)
}

/// `2026-01-02` stays a date; a date-time with an offset becomes RFC 3339 in UTC; a date-time without one
/// is taken as UTC.
fn iso_date_or_time(text: &str) -> Option<String> {
    if !starts_with_iso_date(text) {
        return None;
    }
    if text.len() == ISO_DATE_LEN {
        return Date::from_str(text).ok().map(|date| date.to_string());
    }
    if let Ok(at) = Timestamp::from_str(text) {
        return Some(at.to_string());
    }
    let civil = DateTime::from_str(text).ok()?;
    civil
        .to_zoned(TimeZone::UTC)
        .ok()
        .map(|zoned| zoned.timestamp().to_string())
}

const ISO_DATE_LEN: usize = "YYYY-MM-DD".len();

/// `YYYY-MM-DD` at the start: checked before asking the date parser, which also reads other forms.
fn starts_with_iso_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() >= ISO_DATE_LEN
        && bytes[..ISO_DATE_LEN].iter().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn inference_types_numbers_booleans_and_dates() {
        let cases = [
            ("42", json!(42)),
            ("-7", json!(-7)),
            ("0", json!(0)),
            ("3.25", json!(3.25)),
            ("-0.5", json!(-0.5)),
            ("true", json!(true)),
            ("FALSE", json!(false)),
            ("2026-01-02", json!("2026-01-02")),
            ("2026-01-02T03:04:05Z", json!("2026-01-02T03:04:05Z")),
            ("2026-01-02T05:04:05+02:00", json!("2026-01-02T03:04:05Z")),
            ("2026-01-02 03:04:05.250", json!("2026-01-02T03:04:05.25Z")),
            ("2026-01-02T03:04", json!("2026-01-02T03:04:00Z")),
            ("2026-01-15 12:00", json!("2026-01-15T12:00:00Z")),
        ];
        for (text, expected) in cases {
            assert_eq!(infer(text), expected, "{text}");
        }
    }

    #[test]
    fn inference_keeps_text_that_only_looks_like_a_number_or_date() {
        for text in [
            "007",
            "+15551234",
            "12345678901234567890123",
            "1e5",
            ".5",
            "1.",
            "1,000",
            "yes",
            "2026-13-01",
            "2026-01-02 teatime",
            "2026/01/02",
            "NaN",
        ] {
            assert_eq!(infer(text), json!(text), "{text}");
        }
    }

    #[test]
    fn a_forced_type_converts_or_says_why_not() {
        assert_eq!(convert("007", CellType::String), Ok(json!("007")));
        assert_eq!(convert("42", CellType::String), Ok(json!("42")));
        assert_eq!(convert("007", CellType::Number), Ok(json!(7)));
        assert_eq!(convert("+1.5e3", CellType::Number), Ok(json!(1500.0)));
        assert_eq!(convert("yes", CellType::Bool), Ok(json!(true)));
        assert_eq!(convert("0", CellType::Bool), Ok(json!(false)));
        assert_eq!(
            convert("2026-01-02T03:04:05-01:00", CellType::Date),
            Ok(json!("2026-01-02T04:04:05Z"))
        );
        assert_eq!(
            convert("lots", CellType::Number),
            Err("\"lots\" is not a number".to_string())
        );
        assert_eq!(
            convert("inf", CellType::Number),
            Err("\"inf\" is not a number".to_string())
        );
        assert_eq!(
            convert("maybe", CellType::Bool),
            Err("\"maybe\" is not a boolean (true or false)".to_string())
        );
        assert_eq!(
            convert("02/01/2026", CellType::Date),
            Err("\"02/01/2026\" is not an ISO 8601 date or date-time".to_string())
        );
        assert!(convert("2026-02-30", CellType::Date).is_err());
    }
}
