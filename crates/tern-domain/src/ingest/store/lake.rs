//! Accepted events as `lake` queue messages: `LakeBatch` JSON bodies, each below SQS's message size limit.

use crate::ingest::LakeBatch;
use crate::{DomainError, DomainResult};

/// The largest lake message body, exclusive: SQS takes 256 KiB, and the margin keeps room for attributes.
pub const MAX_LAKE_MESSAGE_BYTES: usize = 240 * 1024;

/// Groups already serialized events (`(messageId, JSON)`, in arrival order) into [`LakeBatch`] bodies of
/// fewer than [`MAX_LAKE_MESSAGE_BYTES`] bytes each, keeping the order. The bodies are assembled from the
/// events' JSON, which is serialized once and reused for the hot copy.
pub(super) fn lake_bodies(
    workspace_id: &str,
    events: &[(&str, &str)],
) -> DomainResult<Vec<String>> {
    let head = lake_body_head(workspace_id)?;
    let fits = |len: usize| len < MAX_LAKE_MESSAGE_BYTES;
    let mut bodies = Vec::new();
    let mut current = head.clone();
    let mut holds_events = false;
    for (message_id, json) in events {
        if !fits(head.len() + json.len() + LAKE_BODY_TAIL.len()) {
            return Err(DomainError::invalid(
                "events",
                format!(
                    "event {message_id} is {} bytes as JSON; the lake takes events below {} bytes",
                    json.len(),
                    MAX_LAKE_MESSAGE_BYTES - head.len() - LAKE_BODY_TAIL.len()
                ),
            ));
        }
        let separator = usize::from(holds_events);
        if !fits(current.len() + separator + json.len() + LAKE_BODY_TAIL.len()) {
            current.push_str(LAKE_BODY_TAIL);
            bodies.push(std::mem::replace(&mut current, head.clone()));
            holds_events = false;
        }
        if holds_events {
            current.push(',');
        }
        current.push_str(json);
        holds_events = true;
    }
    if holds_events {
        current.push_str(LAKE_BODY_TAIL);
        bodies.push(current);
    }
    Ok(bodies)
}

const LAKE_BODY_TAIL: &str = "]}";

/// The start of a [`LakeBatch`] body, as serde writes it, up to the first event.
fn lake_body_head(workspace_id: &str) -> DomainResult<String> {
    let empty = serde_json::to_string(&LakeBatch {
        workspace_id: workspace_id.to_string(),
        events: Vec::new(),
    })
    .map_err(|e| DomainError::invalid("workspace_id", format!("cannot be serialized: {e}")))?;
    empty
        .strip_suffix(LAKE_BODY_TAIL)
        .map(str::to_string)
        .ok_or_else(|| {
            DomainError::Corrupt(format!("a lake batch serializes unexpectedly: {empty}"))
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ingest::Event;

    fn event(message_id: &str, padding: usize) -> Event {
        serde_json::from_value(json!({
            "messageId": message_id,
            "type": "track",
            "userId": "u1",
            "event": "Viewed",
            "properties": {"padding": "x".repeat(padding)},
            "timestamp": "2026-03-01T10:00:00Z",
            "receivedAt": "2026-03-01T10:00:00Z",
        }))
        .unwrap()
    }

    fn bodies_of(events: &[Event]) -> DomainResult<Vec<String>> {
        let json: Vec<String> = events
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect();
        let pairs: Vec<(&str, &str)> = events
            .iter()
            .zip(&json)
            .map(|(e, j)| (e.message_id.as_str(), j.as_str()))
            .collect();
        lake_bodies("ws_1", &pairs)
    }

    #[test]
    fn a_small_batch_is_one_message_that_reads_back_as_a_lake_batch() {
        let events = vec![event("m1", 10), event("m2", 10)];
        let bodies = bodies_of(&events).unwrap();
        assert_eq!(bodies.len(), 1);
        let batch: LakeBatch = serde_json::from_str(&bodies[0]).unwrap();
        assert_eq!(
            batch,
            LakeBatch {
                workspace_id: "ws_1".into(),
                events
            }
        );
    }

    #[test]
    fn large_batches_split_below_the_limit_and_keep_every_event_in_order() {
        let events: Vec<Event> = (0..40).map(|i| event(&format!("m{i}"), 30_000)).collect();
        let bodies = bodies_of(&events).unwrap();
        assert!(bodies.len() >= 5, "{} messages", bodies.len());
        let mut read_back = Vec::new();
        for body in &bodies {
            assert!(body.len() < MAX_LAKE_MESSAGE_BYTES, "{} bytes", body.len());
            let batch: LakeBatch = serde_json::from_str(body).unwrap();
            assert_eq!(batch.workspace_id, "ws_1");
            assert!(!batch.events.is_empty());
            read_back.extend(batch.events);
        }
        assert_eq!(read_back, events);
    }

    #[test]
    fn no_events_make_no_message_and_an_event_too_large_for_any_message_is_refused() {
        assert!(bodies_of(&[]).unwrap().is_empty());
        let error = bodies_of(&[event("huge", MAX_LAKE_MESSAGE_BYTES)]).unwrap_err();
        assert!(
            matches!(&error, DomainError::Invalid { field, message } if field == "events" && message.contains("huge")),
            "{error}"
        );
    }
}
