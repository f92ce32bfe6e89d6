//! Reading lake files back, as far as Tern itself needs: which events a file holds.

use bytes::Bytes;
use parquet::errors::ParquetError;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use parquet::schema::parser::parse_message_type;

use crate::encode::LakeError;

/// The `message_id` of every row of a lake file, in row order.
pub fn read_message_ids(file: Bytes) -> Result<Vec<String>, LakeError> {
    message_ids(file).map_err(LakeError::Read)
}

fn message_ids(file: Bytes) -> Result<Vec<String>, ParquetError> {
    let reader = SerializedFileReader::new(file)?;
    let projection =
        parse_message_type("message event { REQUIRED BYTE_ARRAY message_id (STRING); }")?;
    let mut ids = Vec::new();
    for row in reader.get_row_iter(Some(projection))? {
        match row?.get_column_iter().next() {
            Some((_, Field::Str(id))) => ids.push(id.clone()),
            other => {
                return Err(ParquetError::General(format!(
                    "a row's message_id is not a string: {other:?}"
                )));
            }
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode_events;

    #[test]
    fn the_message_ids_of_a_file_read_back_in_order() {
        let events: Vec<tern_domain::ingest::Event> = ["m-2", "m-1", "m-3"]
            .iter()
            .map(|id| {
                serde_json::from_value(serde_json::json!({
                    "messageId": id, "type": "page", "anonymousId": "a-1", "name": "Home",
                    "timestamp": "2026-01-02T03:04:05Z", "receivedAt": "2026-01-02T03:04:05Z"
                }))
                .expect("an event")
            })
            .collect();
        let file = encode_events(&events).unwrap();
        assert_eq!(
            read_message_ids(Bytes::from(file)).unwrap(),
            vec!["m-2", "m-1", "m-3"]
        );
    }

    #[test]
    fn bytes_that_are_not_parquet_are_an_error() {
        let error = read_message_ids(Bytes::from_static(b"not parquet")).unwrap_err();
        assert!(matches!(error, LakeError::Read(_)), "{error}");
        assert!(
            error.to_string().starts_with("cannot read a lake file: "),
            "{error}"
        );
    }
}
