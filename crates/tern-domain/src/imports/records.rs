//! CSV records out of a byte stream that arrives in chunks, holding at most one record in memory.
//!
//! `csv_core` does the parsing (RFC 4180 quoting, `\n`, `\r\n` or `\r` line ends, a UTF-8 byte-order mark
//! skipped, blank lines ignored); this splitter feeds it chunk by chunk and keeps the current record in a
//! buffer that never grows past a bound, so a 1 GB file — or a 1 GB line — is read in constant memory.

use csv_core::{ReadRecordResult, Reader};

/// What [`RecordSplitter::split`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// A record ended; read it with [`RecordSplitter::record`].
    Record,
    /// The chunk is used up in the middle of a record: feed the next one.
    NeedInput,
    /// The stream ended (only after an empty chunk, which says so) and every record was returned.
    End,
}

/// The record just split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawRecord<'a> {
    Fields(Vec<&'a [u8]>),
    /// Its fields together exceed the byte bound; their content was not kept.
    TooLarge,
    /// It has more fields than the field bound; they were not kept.
    TooManyFields,
}

pub struct RecordSplitter {
    core: Reader,
    bytes: Vec<u8>,
    ends: Vec<usize>,
    bytes_len: usize,
    ends_len: usize,
    max_bytes: usize,
    max_fields: usize,
    too_large: bool,
    too_many_fields: bool,
    /// A record was returned; its buffers are cleared when the next one starts.
    returned: bool,
    /// Records split so far.
    records: u64,
    consumed: u64,
}

/// The first size of the record buffer; it doubles up to the bound as records need.
const INITIAL_BYTES: usize = 1024;
const INITIAL_FIELDS: usize = 32;
const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

impl RecordSplitter {
    /// A splitter that keeps records of at most `max_bytes` bytes of content and `max_fields` fields.
    pub fn new(max_bytes: usize, max_fields: usize) -> Self {
        Self {
            core: Reader::new(),
            bytes: vec![0; INITIAL_BYTES.min(max_bytes + 1)],
            ends: vec![0; INITIAL_FIELDS.min(max_fields + 1)],
            bytes_len: 0,
            ends_len: 0,
            // One spare byte and field: a record exactly at the bound fills the buffer without overflowing.
            max_bytes: max_bytes + 1,
            max_fields: max_fields + 1,
            too_large: false,
            too_many_fields: false,
            returned: false,
            records: 0,
            consumed: 0,
        }
    }

    /// Reads `input` until a record ends or the chunk is used up; returns what happened and how many bytes
    /// of `input` it used (call again with the rest). `last` says no input follows this chunk: the record it
    /// ends in is returned, then [`Split::End`].
    pub fn split(&mut self, input: &[u8], last: bool) -> (Split, usize) {
        if self.returned {
            self.start_record();
        }
        let mut used = 0;
        loop {
            let rest = &input[used..];
            // A byte-order mark is skipped here rather than by csv_core, which takes a first chunk holding
            // nothing else for the end of the stream.
            if self.consumed == 0 && rest.starts_with(UTF8_BOM) {
                used += UTF8_BOM.len();
                self.consumed += UTF8_BOM.len() as u64;
                continue;
            }
            // An empty input tells csv_core that the stream ended; only say so at the end.
            if rest.is_empty() && !last {
                return (Split::NeedInput, used);
            }
            let (result, read, written, ended) = self.core.read_record(
                rest,
                &mut self.bytes[self.bytes_len..],
                &mut self.ends[self.ends_len..],
            );
            used += read;
            self.consumed += read as u64;
            self.bytes_len += written;
            self.ends_len += ended;
            match result {
                ReadRecordResult::InputEmpty if rest.is_empty() => return (Split::End, used),
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => self.make_room_for_bytes(),
                ReadRecordResult::OutputEndsFull => self.make_room_for_fields(),
                ReadRecordResult::Record => {
                    self.returned = true;
                    self.records += 1;
                    return (Split::Record, used);
                }
                ReadRecordResult::End => return (Split::End, used),
            }
        }
    }

    /// The record [`split`](Self::split) last reported.
    pub fn record(&self) -> RawRecord<'_> {
        if self.too_large {
            return RawRecord::TooLarge;
        }
        if self.too_many_fields {
            return RawRecord::TooManyFields;
        }
        let ends = &self.ends[..self.ends_len];
        let mut fields: Vec<&[u8]> = ends
            .iter()
            .enumerate()
            .map(|(index, &end)| {
                let start = if index == 0 { 0 } else { ends[index - 1] };
                &self.bytes[start..end]
            })
            .collect();
        // A byte-order mark split over the first chunks reaches the first field.
        if self.records == 1
            && let Some(first) = fields.first_mut()
        {
            *first = first.strip_prefix(UTF8_BOM).unwrap_or(first);
        }
        RawRecord::Fields(fields)
    }

    /// Bytes of the stream used so far, up to the end of the last record returned.
    pub fn position(&self) -> u64 {
        self.consumed
    }

    fn start_record(&mut self) {
        self.bytes_len = 0;
        self.ends_len = 0;
        self.too_large = false;
        self.too_many_fields = false;
        self.returned = false;
    }

    fn make_room_for_bytes(&mut self) {
        if self.bytes.len() < self.max_bytes {
            let grown = (self.bytes.len() * 2).clamp(INITIAL_BYTES, self.max_bytes);
            self.bytes.resize(grown, 0);
        } else {
            // Over the bound: the rest of the record is parsed (to find where it ends) into the same
            // buffer and thrown away.
            self.too_large = true;
            self.bytes_len = 0;
        }
    }

    fn make_room_for_fields(&mut self) {
        if self.ends.len() < self.max_fields {
            let grown = (self.ends.len() * 2).clamp(INITIAL_FIELDS, self.max_fields);
            self.ends.resize(grown, 0);
        } else {
            self.too_many_fields = true;
            self.ends_len = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything the splitter returns for `data` fed in chunks of `chunk` bytes, as owned text.
    fn split_all(
        data: &[u8],
        chunk: usize,
        max_bytes: usize,
        max_fields: usize,
    ) -> Vec<Result<Vec<String>, String>> {
        let mut splitter = RecordSplitter::new(max_bytes, max_fields);
        let mut records = Vec::new();
        let mut chunks = data.chunks(chunk).peekable();
        let mut current = chunks.next().unwrap_or(&[]);
        loop {
            let last = chunks.peek().is_none();
            let (split, used) = splitter.split(current, last);
            current = &current[used..];
            match split {
                Split::Record => records.push(match splitter.record() {
                    RawRecord::Fields(fields) => Ok(fields
                        .iter()
                        .map(|f| String::from_utf8_lossy(f).into_owned())
                        .collect()),
                    other => Err(format!("{other:?}")),
                }),
                Split::NeedInput => current = chunks.next().expect("more input after NeedInput"),
                Split::End => break,
            }
        }
        assert_eq!(splitter.position(), data.len() as u64);
        records
    }

    fn ok(fields: &[&str]) -> Result<Vec<String>, String> {
        Ok(fields.iter().map(|f| f.to_string()).collect())
    }

    #[test]
    fn records_are_the_same_whatever_the_chunk_size() {
        let data = "\u{feff}id,note\r\nu1,\"a, \"\"quoted\"\"\nnote\"\n\nu2,plain\nu3,last-without-newline";
        let expected = vec![
            ok(&["id", "note"]),
            ok(&["u1", "a, \"quoted\"\nnote"]),
            ok(&["u2", "plain"]),
            ok(&["u3", "last-without-newline"]),
        ];
        for chunk in [1, 2, 3, 7, 64, 4096] {
            assert_eq!(
                split_all(data.as_bytes(), chunk, 1024, 10),
                expected,
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn records_over_the_bounds_are_reported_and_the_next_ones_still_read() {
        let long = "x".repeat(100);
        let data = format!("a,b\n{long},y\nc,d\n1,2,3,4,5\ne,f\n");
        let records = split_all(data.as_bytes(), 5, 50, 3);
        assert_eq!(
            records,
            vec![
                ok(&["a", "b"]),
                Err("TooLarge".into()),
                ok(&["c", "d"]),
                Err("TooManyFields".into()),
                ok(&["e", "f"]),
            ]
        );
    }

    #[test]
    fn a_record_exactly_at_the_bound_is_kept() {
        let exact = "x".repeat(50);
        let data = format!("{exact}\n");
        assert_eq!(split_all(data.as_bytes(), 8, 50, 3), vec![ok(&[&exact])]);
    }

    #[test]
    fn an_empty_stream_has_no_records() {
        assert_eq!(
            split_all(b"", 8, 50, 3),
            Vec::<Result<Vec<String>, String>>::new()
        );
    }
}
