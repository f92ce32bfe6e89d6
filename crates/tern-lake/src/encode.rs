//! Events to one Parquet file (one row group, Snappy pages), with parquet's low-level column writers.

use std::sync::Arc;

use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, DataType, Int64Type};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::{SerializedColumnWriter, SerializedFileWriter};
use parquet::schema::parser::parse_message_type;
use serde_json::{Map, Value};
use tern_domain::ingest::Event;
use thiserror::Error;

use crate::columns::{COLUMNS, Column, ColumnKind};

/// The media type lake objects are stored with.
pub const CONTENT_TYPE: &str = "application/vnd.apache.parquet";

/// Why events could not be encoded.
#[derive(Debug, Error)]
pub enum LakeError {
    #[error("cannot encode events as Parquet: {0}")]
    Encode(#[from] ParquetError),
    #[error("cannot read a lake file: {0}")]
    Read(ParquetError),
    #[error("cannot encode column {column} as JSON: {source}")]
    Json {
        column: &'static str,
        source: serde_json::Error,
    },
}

/// Encodes `events` as one Parquet file with the columns of [`COLUMNS`], in the order given.
pub fn encode_events(events: &[Event]) -> Result<Vec<u8>, LakeError> {
    let schema = Arc::new(parse_message_type(&message_type())?);
    let properties = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!("tern {}", env!("CARGO_PKG_VERSION")))
            .build(),
    );
    let mut writer = SerializedFileWriter::new(Vec::new(), schema, properties)?;
    let mut row_group = writer.next_row_group()?;
    for column in COLUMNS {
        let mut column_writer = row_group.next_column()?.ok_or_else(|| {
            ParquetError::General(format!("the schema has no column {}", column.name))
        })?;
        write_column(&mut column_writer, column, events)?;
        column_writer.close()?;
    }
    row_group.close()?;
    Ok(writer.into_inner()?)
}

/// The Parquet message type declaring [`COLUMNS`].
fn message_type() -> String {
    let fields: Vec<String> = COLUMNS.iter().map(Column::parquet_declaration).collect();
    format!("message event {{ {} }}", fields.join(" "))
}

fn write_column(
    writer: &mut SerializedColumnWriter<'_>,
    column: &Column,
    events: &[Event],
) -> Result<(), LakeError> {
    let required = column.is_required();
    match column.kind {
        ColumnKind::Text(value) => {
            let values = events.iter().map(|e| Some(ByteArray::from(value(e))));
            write_values::<ByteArrayType>(writer, values.collect(), required)?;
        }
        ColumnKind::OptionalText(value) => {
            let values = events.iter().map(|e| value(e).map(ByteArray::from));
            write_values::<ByteArrayType>(writer, values.collect(), required)?;
        }
        ColumnKind::Json(value) => {
            let values = events
                .iter()
                .map(|e| json_text(column.name, value(e)))
                .collect::<Result<_, _>>()?;
            write_values::<ByteArrayType>(writer, values, required)?;
        }
        ColumnKind::Time(value) => {
            let values = events.iter().map(|e| Some(value(e).as_millisecond()));
            write_values::<Int64Type>(writer, values.collect(), required)?;
        }
        ColumnKind::OptionalTime(value) => {
            let values = events.iter().map(|e| value(e).map(|t| t.as_millisecond()));
            write_values::<Int64Type>(writer, values.collect(), required)?;
        }
    }
    Ok(())
}

/// An object as JSON text; an empty one is null, as absent fields are in the event's own JSON.
fn json_text(
    column: &'static str,
    object: &Map<String, Value>,
) -> Result<Option<ByteArray>, LakeError> {
    if object.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(object)
        .map(|text| Some(ByteArray::from(text.into_bytes())))
        .map_err(|source| LakeError::Json { column, source })
}

/// Writes one value per row; a required column has no definition levels, an optional one marks each
/// present value with level 1 and each null with level 0.
fn write_values<T: DataType>(
    writer: &mut SerializedColumnWriter<'_>,
    values: Vec<Option<T::T>>,
    required: bool,
) -> Result<(), ParquetError> {
    let definition_levels: Vec<i16> = values.iter().map(|v| i16::from(v.is_some())).collect();
    let present: Vec<T::T> = values.into_iter().flatten().collect();
    let levels = (!required).then_some(definition_levels.as_slice());
    writer.typed::<T>().write_batch(&present, levels, None)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use jiff::Timestamp;
    use parquet::basic::{Compression, LogicalType, Repetition, TimeUnit};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::{Field, Row};
    use serde_json::json;
    use tern_domain::ingest::EventKind;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().expect("a valid timestamp")
    }

    fn track() -> Event {
        Event {
            message_id: "m-track".into(),
            kind: EventKind::Track,
            user_id: Some("u-1".into()),
            anonymous_id: Some("a-1".into()),
            event: Some("Order Completed".into()),
            name: None,
            category: None,
            group_id: None,
            previous_id: None,
            traits: Map::new(),
            properties: object(json!({"total": 12.5, "items": ["a", "b"]})),
            context: object(json!({
                "ip": "203.0.113.9",
                "userAgent": "Mozilla/5.0",
                "locale": "fr-FR",
                "timezone": "Europe/Paris",
                "library": {"name": "analytics.js"}
            })),
            integrations: object(json!({"All": true})),
            timestamp: at("2026-01-02T03:04:05.678Z"),
            original_timestamp: Some(at("2026-01-02T03:04:00Z")),
            sent_at: Some(at("2026-01-02T03:04:01Z")),
            received_at: at("2026-01-02T03:04:06.001Z"),
        }
    }

    fn identify() -> Event {
        Event {
            message_id: "m-identify".into(),
            kind: EventKind::Identify,
            user_id: None,
            anonymous_id: Some("a-2".into()),
            event: None,
            name: None,
            category: None,
            group_id: None,
            previous_id: None,
            traits: object(json!({"email": "ada@example.com", "plan": null})),
            properties: Map::new(),
            context: Map::new(),
            integrations: Map::new(),
            timestamp: at("2026-01-02T03:10:00Z"),
            original_timestamp: None,
            sent_at: None,
            received_at: at("2026-01-02T03:10:00Z"),
        }
    }

    fn read_rows(file: Vec<u8>) -> (SerializedFileReader<Bytes>, Vec<Row>) {
        let reader = SerializedFileReader::new(Bytes::from(file)).expect("a Parquet file");
        let rows = reader
            .get_row_iter(None)
            .expect("rows")
            .collect::<Result<Vec<_>, _>>()
            .expect("readable rows");
        (reader, rows)
    }

    fn field<'r>(row: &'r Row, name: &str) -> &'r Field {
        row.get_column_iter()
            .find(|(column, _)| column.as_str() == name)
            .map(|(_, value)| value)
            .unwrap_or_else(|| panic!("no column {name}"))
    }

    fn text(row: &Row, name: &str) -> Option<String> {
        match field(row, name) {
            Field::Null => None,
            Field::Str(text) => Some(text.clone()),
            other => panic!("column {name} is not a string: {other:?}"),
        }
    }

    fn millis(row: &Row, name: &str) -> Option<i64> {
        match field(row, name) {
            Field::Null => None,
            Field::TimestampMillis(millis) => Some(*millis),
            other => panic!("column {name} is not a millisecond timestamp: {other:?}"),
        }
    }

    #[test]
    fn the_file_declares_every_column_in_order_with_its_type() {
        let (reader, _) = read_rows(encode_events(&[track()]).unwrap());
        let schema = reader.metadata().file_metadata().schema_descr();
        let names: Vec<&str> = schema.columns().iter().map(|c| c.name()).collect();
        let expected: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
        assert_eq!(names, expected);
        assert_eq!(names.len(), 21);

        for (descriptor, column) in schema.columns().iter().zip(COLUMNS) {
            let repetition = descriptor.self_type().get_basic_info().repetition();
            let expected_repetition = if column.is_required() {
                Repetition::REQUIRED
            } else {
                Repetition::OPTIONAL
            };
            assert_eq!(repetition, expected_repetition, "{}", column.name);
            let logical = descriptor.logical_type_ref().cloned();
            match column.glue_type() {
                "string" => assert_eq!(logical, Some(LogicalType::String), "{}", column.name),
                "timestamp" => assert_eq!(
                    logical,
                    Some(LogicalType::timestamp(true, TimeUnit::MILLIS)),
                    "{}",
                    column.name
                ),
                other => panic!("unexpected type {other}"),
            }
        }
    }

    #[test]
    fn the_file_is_snappy_compressed_in_one_row_group() {
        let (reader, rows) = read_rows(encode_events(&[track(), identify()]).unwrap());
        assert_eq!(rows.len(), 2);
        assert_eq!(reader.metadata().num_row_groups(), 1);
        let row_group = reader.metadata().row_group(0);
        for column in row_group.columns() {
            assert_eq!(
                column.compression(),
                Compression::SNAPPY,
                "{}",
                column.column_path()
            );
        }
    }

    #[test]
    fn values_read_back_as_written_and_empty_fields_are_null() {
        let (_, rows) = read_rows(encode_events(&[track(), identify()]).unwrap());
        let (track_row, identify_row) = (&rows[0], &rows[1]);

        assert_eq!(text(track_row, "message_id").as_deref(), Some("m-track"));
        assert_eq!(text(track_row, "type").as_deref(), Some("track"));
        assert_eq!(text(track_row, "user_id").as_deref(), Some("u-1"));
        assert_eq!(text(track_row, "anonymous_id").as_deref(), Some("a-1"));
        assert_eq!(text(track_row, "event").as_deref(), Some("Order Completed"));
        assert_eq!(text(track_row, "name"), None);
        assert_eq!(
            millis(track_row, "timestamp"),
            Some(at("2026-01-02T03:04:05.678Z").as_millisecond())
        );
        assert_eq!(
            millis(track_row, "received_at"),
            Some(at("2026-01-02T03:04:06.001Z").as_millisecond())
        );
        assert_eq!(
            millis(track_row, "sent_at"),
            Some(at("2026-01-02T03:04:01Z").as_millisecond())
        );
        assert_eq!(
            millis(track_row, "original_timestamp"),
            Some(at("2026-01-02T03:04:00Z").as_millisecond())
        );
        let properties: Value =
            serde_json::from_str(&text(track_row, "properties").unwrap()).unwrap();
        assert_eq!(properties, json!({"total": 12.5, "items": ["a", "b"]}));
        let context: Value = serde_json::from_str(&text(track_row, "context").unwrap()).unwrap();
        assert_eq!(context["library"]["name"], "analytics.js");
        assert_eq!(
            text(track_row, "context_ip").as_deref(),
            Some("203.0.113.9")
        );
        assert_eq!(
            text(track_row, "context_user_agent").as_deref(),
            Some("Mozilla/5.0")
        );
        assert_eq!(text(track_row, "context_locale").as_deref(), Some("fr-FR"));
        assert_eq!(
            text(track_row, "context_timezone").as_deref(),
            Some("Europe/Paris")
        );
        assert_eq!(
            text(track_row, "integrations").as_deref(),
            Some(r#"{"All":true}"#)
        );
        assert_eq!(text(track_row, "traits"), None);

        assert_eq!(text(identify_row, "type").as_deref(), Some("identify"));
        assert_eq!(text(identify_row, "user_id"), None);
        assert_eq!(millis(identify_row, "sent_at"), None);
        assert_eq!(millis(identify_row, "original_timestamp"), None);
        assert_eq!(text(identify_row, "properties"), None);
        assert_eq!(text(identify_row, "context"), None);
        assert_eq!(text(identify_row, "context_ip"), None);
        // An explicit null trait is kept: it is how identify removes a trait.
        let traits: Value = serde_json::from_str(&text(identify_row, "traits").unwrap()).unwrap();
        assert_eq!(traits, json!({"email": "ada@example.com", "plan": null}));
    }

    #[test]
    fn a_context_field_that_is_not_a_string_is_null_in_its_own_column() {
        let mut event = track();
        event.context = object(json!({"ip": 42, "locale": ["fr"]}));
        let (_, rows) = read_rows(encode_events(&[event]).unwrap());
        assert_eq!(text(&rows[0], "context_ip"), None);
        assert_eq!(text(&rows[0], "context_locale"), None);
        assert_eq!(
            text(&rows[0], "context").as_deref(),
            Some(r#"{"ip":42,"locale":["fr"]}"#)
        );
    }

    #[test]
    fn many_events_keep_their_order() {
        let events: Vec<Event> = (0..2500)
            .map(|i| Event {
                message_id: format!("m-{i:05}"),
                ..track()
            })
            .collect();
        let (_, rows) = read_rows(encode_events(&events).unwrap());
        let ids: Vec<String> = rows.iter().filter_map(|r| text(r, "message_id")).collect();
        let expected: Vec<String> = events.iter().map(|e| e.message_id.clone()).collect();
        assert_eq!(ids, expected);
    }
}
