//! Where lake objects go: Hive-style partitions by workspace, UTC date and UTC hour of the event's
//! `timestamp`, as the Glue table's partition projection expects them.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use sha2::{Digest, Sha256};
use tern_domain::ingest::Event;

/// Every object of the `events` table lives under this prefix.
pub const EVENTS_PREFIX: &str = "lake/events/";

/// How many hex digits of the content digest a file name carries.
const DIGEST_HEX_DIGITS: usize = 16;

/// One partition of the `events` table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    workspace_id: String,
    year: i16,
    month: i8,
    day: i8,
    hour: i8,
}

impl Partition {
    /// The partition an event at `timestamp` belongs to (UTC).
    pub fn of(workspace_id: &str, timestamp: Timestamp) -> Self {
        let utc = TimeZone::UTC.to_datetime(timestamp);
        Self {
            workspace_id: workspace_id.to_string(),
            year: utc.year(),
            month: utc.month(),
            day: utc.day(),
            hour: utc.hour(),
        }
    }

    pub fn workspace_id(&self) -> &str {
        &self.workspace_id
    }

    /// `YYYY-MM-DD`, the `dt` partition value.
    pub fn date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// `lake/events/workspace=<id>/dt=<YYYY-MM-DD>/hour=<HH>/`.
    pub fn prefix(&self) -> String {
        format!(
            "{EVENTS_PREFIX}workspace={}/dt={}/hour={:02}/",
            escape_partition_value(&self.workspace_id),
            self.date(),
            self.hour
        )
    }

    /// The key of a new object holding `events`: the partition's prefix and [`file_name`].
    pub fn object_key(&self, events: &[Event]) -> String {
        format!("{}{}", self.prefix(), file_name(events))
    }
}

/// `lake/events/workspace=<id>/dt=<YYYY-MM-DD>/hour=<HH>/` for an event of `workspace_id` at `timestamp`.
pub fn partition_prefix(workspace_id: &str, timestamp: Timestamp) -> String {
    Partition::of(workspace_id, timestamp).prefix()
}

/// A name no other object gets: a UUID v7 (unique, and sorting by write time in listings) followed by a
/// digest of the events' message ids, so that two files with the same events are recognisable as such.
pub fn file_name(events: &[Event]) -> String {
    let mut hasher = Sha256::new();
    for event in events {
        hasher.update(event.message_id.as_bytes());
        hasher.update([0]);
    }
    let digest = hex::encode(hasher.finalize());
    format!(
        "{}-{}.parquet",
        uuid::Uuid::now_v7(),
        &digest[..DIGEST_HEX_DIGITS]
    )
}

/// Hive's escaping of a partition value: characters that would end the segment or confuse a reader
/// (`/`, `=`, `%`, …) become `%XX`. Tern's own ids (`ws_…`) pass through unchanged.
fn escape_partition_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.') {
            escaped.push(char::from(byte));
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("a valid timestamp")
    }

    #[test]
    fn the_prefix_names_workspace_date_and_two_digit_hour_in_utc() {
        assert_eq!(
            partition_prefix("ws_abc", at("2026-03-04T05:06:07Z")),
            "lake/events/workspace=ws_abc/dt=2026-03-04/hour=05/"
        );
        // 23:30 at UTC-02:00 is 01:30 the next day in UTC.
        assert_eq!(
            partition_prefix("ws_abc", at("2026-12-31T23:30:00-02:00")),
            "lake/events/workspace=ws_abc/dt=2027-01-01/hour=01/"
        );
    }

    #[test]
    fn events_of_the_same_hour_share_a_partition_and_the_next_hour_does_not() {
        let first = Partition::of("ws_1", at("2026-01-02T03:00:00Z"));
        let same = Partition::of("ws_1", at("2026-01-02T03:59:59.999Z"));
        let next = Partition::of("ws_1", at("2026-01-02T04:00:00Z"));
        let other_workspace = Partition::of("ws_2", at("2026-01-02T03:00:00Z"));
        assert_eq!(first, same);
        assert_ne!(first, next);
        assert_ne!(first, other_workspace);
        assert_eq!(first.date(), "2026-01-02");
    }

    #[test]
    fn a_workspace_id_cannot_break_out_of_its_segment() {
        assert_eq!(
            partition_prefix("../a/b=c%", at("2026-01-02T03:00:00Z")),
            "lake/events/workspace=..%2Fa%2Fb%3Dc%25/dt=2026-01-02/hour=03/"
        );
    }

    #[test]
    fn file_names_never_repeat_and_carry_the_same_digest_for_the_same_events() {
        let first = file_name(&[]);
        let second = file_name(&[]);
        assert_ne!(first, second);
        assert!(first.ends_with(".parquet"), "{first}");
        let digest = |name: &str| {
            name.trim_end_matches(".parquet")
                .rsplit('-')
                .next()
                .map(str::to_string)
        };
        assert_eq!(digest(&first), digest(&second));
        assert_eq!(digest(&first).map(|d| d.len()), Some(DIGEST_HEX_DIGITS));

        let event: tern_domain::ingest::Event = serde_json::from_value(serde_json::json!({
            "messageId": "m-1", "type": "track", "userId": "u-1",
            "timestamp": "2026-01-02T03:04:05Z", "receivedAt": "2026-01-02T03:04:05Z"
        }))
        .expect("an event");
        assert_ne!(digest(&file_name(&[event])), digest(&first));
    }
}
