//! How an item is stored in the `item` column: a compact binary encoding of its attributes.
//!
//! The key attributes `pk` and `sk` are left out (they are the row's key columns and are put back when
//! the row is read), and nothing is escaped, so a row is about the size of its data: most items then fit
//! in their b-tree cell instead of spilling into overflow pages, which would double the pages a write
//! touches. The layout, all lengths and counts as LEB128 varints:
//!
//! ```text
//! item   = FORMAT attr*            (attributes in name order, to the end of the blob)
//! attr   = text(name) value
//! value  = S text | N text | B bytes | TRUE | FALSE | NULL bool | L count value* | M count attr*
//! text   = len utf8-bytes          bytes = len raw-bytes
//! ```
//!
//! Rows written before this encoding hold DynamoDB JSON as text; [`decode`] reads both.

use std::collections::BTreeMap;

use tern_ports::table::{AttrValue, Number, PK, SK};
use tern_ports::{Item, Key, PortError, PortResult};

/// The first byte of every encoded item; a later layout takes another value.
const FORMAT: u8 = 1;

const TAG_S: u8 = 1;
const TAG_N: u8 = 2;
const TAG_B: u8 = 3;
const TAG_TRUE: u8 = 4;
const TAG_FALSE: u8 = 5;
const TAG_NULL: u8 = 6;
const TAG_L: u8 = 7;
const TAG_M: u8 = 8;

/// Deeper nesting than DynamoDB's 32 levels can only come from a damaged row; refusing it keeps a
/// damaged row from exhausting the stack.
const MAX_DEPTH: usize = 64;

/// The item's attributes other than its key, encoded.
pub fn encode(item: &Item) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.push(FORMAT);
    for (name, value) in &item.0 {
        if name == PK || name == SK {
            continue;
        }
        put_text(&mut out, name);
        put_value(&mut out, value);
    }
    out
}

/// The stored form of a row, as SQLite hands it back.
pub enum Stored<'a> {
    Binary(&'a [u8]),
    /// DynamoDB JSON, as rows were written before the binary encoding.
    Json(&'a str),
}

/// The item stored under `key`.
pub fn decode(key: Key, stored: Stored<'_>) -> PortResult<Item> {
    match stored {
        Stored::Binary(bytes) => decode_binary(key, bytes),
        Stored::Json(json) => serde_json::from_str(json).map_err(|e| {
            corrupt(
                &key,
                &format!("it holds text that is not DynamoDB JSON ({e})"),
            )
        }),
    }
}

fn decode_binary(key: Key, bytes: &[u8]) -> PortResult<Item> {
    let mut reader = Reader { bytes, at: 0 };
    match reader.byte() {
        Some(FORMAT) => {}
        Some(other) => return Err(corrupt(&key, &format!("unknown format {other}"))),
        None => return Err(corrupt(&key, "it is empty")),
    }
    let mut attributes = BTreeMap::new();
    while !reader.is_done() {
        let (name, value) = reader
            .attribute(0)
            .ok_or_else(|| corrupt(&key, &format!("it is damaged at byte {}", reader.at)))?;
        attributes.insert(name, value);
    }
    attributes.insert(PK.to_string(), AttrValue::S(key.pk));
    attributes.insert(SK.to_string(), AttrValue::S(key.sk));
    Ok(Item(attributes))
}

fn corrupt(key: &Key, why: &str) -> PortError {
    PortError::Other(format!(
        "the stored item ({}, {}) cannot be read: {why}",
        key.pk, key.sk
    ))
}

fn put_varint(out: &mut Vec<u8>, mut value: usize) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len());
    out.extend_from_slice(bytes);
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    put_bytes(out, text.as_bytes());
}

fn put_value(out: &mut Vec<u8>, value: &AttrValue) {
    match value {
        AttrValue::S(text) => {
            out.push(TAG_S);
            put_text(out, text);
        }
        AttrValue::N(number) => {
            out.push(TAG_N);
            put_text(out, number.as_str());
        }
        AttrValue::B(bytes) => {
            out.push(TAG_B);
            put_bytes(out, bytes);
        }
        AttrValue::Bool(true) => out.push(TAG_TRUE),
        AttrValue::Bool(false) => out.push(TAG_FALSE),
        AttrValue::Null(flag) => {
            out.push(TAG_NULL);
            out.push(u8::from(*flag));
        }
        AttrValue::L(values) => {
            out.push(TAG_L);
            put_varint(out, values.len());
            values.iter().for_each(|value| put_value(out, value));
        }
        AttrValue::M(attributes) => {
            out.push(TAG_M);
            put_varint(out, attributes.len());
            for (name, value) in attributes {
                put_text(out, name);
                put_value(out, value);
            }
        }
    }
}

/// Reads an encoded item; every method returns `None` on damaged input instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn is_done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn byte(&mut self) -> Option<u8> {
        let byte = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    fn varint(&mut self) -> Option<usize> {
        let mut value: usize = 0;
        for shift in (0..usize::BITS).step_by(7) {
            let byte = self.byte()?;
            value |= usize::from(byte & 0x7f).checked_shl(shift)?;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn bytes(&mut self) -> Option<&[u8]> {
        let len = self.varint()?;
        let end = self.at.checked_add(len)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    fn text(&mut self) -> Option<String> {
        std::str::from_utf8(self.bytes()?).ok().map(str::to_string)
    }

    fn attribute(&mut self, depth: usize) -> Option<(String, AttrValue)> {
        let name = self.text()?;
        let value = self.value(depth)?;
        Some((name, value))
    }

    fn value(&mut self, depth: usize) -> Option<AttrValue> {
        if depth > MAX_DEPTH {
            return None;
        }
        Some(match self.byte()? {
            TAG_S => AttrValue::S(self.text()?),
            TAG_N => AttrValue::N(Number::parse(&self.text()?)?),
            TAG_B => AttrValue::B(self.bytes()?.to_vec()),
            TAG_TRUE => AttrValue::Bool(true),
            TAG_FALSE => AttrValue::Bool(false),
            TAG_NULL => AttrValue::Null(self.byte()? != 0),
            TAG_L => {
                let count = self.varint()?;
                // Each value takes at least one byte, so a count beyond the rest is damage.
                let mut values = Vec::with_capacity(count.min(self.bytes.len() - self.at));
                for _ in 0..count {
                    values.push(self.value(depth + 1)?);
                }
                AttrValue::L(values)
            }
            TAG_M => {
                let count = self.varint()?;
                let mut attributes = BTreeMap::new();
                for _ in 0..count {
                    let (name, value) = self.attribute(depth + 1)?;
                    attributes.insert(name, value);
                }
                AttrValue::M(attributes)
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind_of_value(key: &Key) -> Item {
        let nested: BTreeMap<String, AttrValue> = [
            (
                "inner".to_string(),
                AttrValue::L(vec![1i64.into(), "two".into()]),
            ),
            ("empty".to_string(), AttrValue::M(BTreeMap::new())),
        ]
        .into();
        Item::new(key)
            .with("text", "héllo \"quoted\" \u{0}")
            .with("empty_text", "")
            .with("integer", -42i64)
            .with("decimal", AttrValue::N(Number::parse("3.25e10").unwrap()))
            .with("bytes", AttrValue::B(vec![0, 255, 7]))
            .with("yes", true)
            .with("no", false)
            .with("null", AttrValue::null())
            .with("list", AttrValue::L(vec![AttrValue::M(nested.clone())]))
            .with("map", AttrValue::M(nested))
            .with(&"long".repeat(100), "x".repeat(300))
    }

    #[test]
    fn every_value_round_trips_and_the_key_comes_from_the_row() {
        let key = Key::new("WS#a#U#u1", "PROFILE");
        let item = every_kind_of_value(&key);
        let encoded = encode(&item);
        assert!(
            !encoded
                .windows(key.pk.len())
                .any(|w| w == key.pk.as_bytes()),
            "the key is not stored twice"
        );
        assert_eq!(decode(key, Stored::Binary(&encoded)).unwrap(), item);
    }

    #[test]
    fn rows_written_as_dynamodb_json_are_still_read() {
        let key = Key::new("p", "s");
        let item = every_kind_of_value(&key);
        let json = serde_json::to_string(&item).unwrap();
        assert_eq!(decode(key, Stored::Json(&json)).unwrap(), item);
    }

    #[test]
    fn a_damaged_row_is_an_error_naming_the_item() {
        let key = Key::new("p", "s");
        let encoded = encode(&every_kind_of_value(&key));
        for cut in 1..encoded.len() - 1 {
            let result = decode(key.clone(), Stored::Binary(&encoded[..cut]));
            if let Err(error) = result {
                assert!(error.to_string().contains("(p, s)"), "{error}");
            }
        }
        assert!(decode(key.clone(), Stored::Binary(&encoded[..encoded.len() - 1])).is_err());
        assert!(decode(key.clone(), Stored::Binary(&[])).is_err());
        assert!(decode(key.clone(), Stored::Binary(&[9, 1])).is_err());
        assert!(decode(key.clone(), Stored::Json("{not json")).is_err());
        let deep: Vec<u8> = std::iter::once(FORMAT)
            .chain([1, b'a'])
            .chain(std::iter::repeat_n(TAG_L, 10_000).flat_map(|tag| [tag, 1]))
            .collect();
        assert!(decode(key.clone(), Stored::Binary(&deep)).is_err());
        let huge_count = [FORMAT, 1, b'a', TAG_L, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(decode(key.clone(), Stored::Binary(&huge_count)).is_err());
    }
}
