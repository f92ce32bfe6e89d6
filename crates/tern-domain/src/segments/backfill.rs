//! Backfills: when a segment is created or edited, its membership is computed over the workspace's existing
//! users by a job on the `segment-backfill` queue, one page of users per message, before the real-time path
//! keeps it up to date.
//!
//! Progress is one item per segment (`layout::segment_backfill_key`): the segment version it backfills,
//! the position in the users' list, how many users were evaluated, and when it started and finished. Each
//! message handles the page after the stored position, then moves the position with a write conditional on
//! the item's `version` (bumped by every write), and sends the message for the next page. So a redelivered
//! message resumes where the item says, a duplicate loses the conditional write and stops, and a message
//! of an older save (or of a backfill restarted by a newer save) finds another segment version and stops.
//!
//! Users are evaluated through the real-time path's conditional state write
//! (`realtime::backfill_users`), so each membership change is applied and published once. For the event
//! conditions a user's state has no counter for yet (a brand-new segment, or an edit that counts something
//! new), the counters are rebuilt from the user's hot events — the events of the last 90 days kept in the
//! profile's partition — so that history counts.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tern_ports::table::VERSION;
use tern_ports::{Condition, Item, OutMessage, PortError, Ports, Query, Table};

use super::realtime::{BackfillUser, backfill_users};
use super::store::invalidate_index;
use super::{Requirements, SegmentDefinition};
use crate::ingest::store::HOT_EVENT_TTL;
use crate::ingest::{Event, Subject};
use crate::profile::{self, attr as profile_attr};
use crate::stored::{corrupt, optional_time, required_s, required_time};
use crate::{DomainError, DomainResult, layout};

/// The logical queue of backfill steps.
pub const SEGMENT_BACKFILL_QUEUE: &str = "segment-backfill";
/// How many users one message evaluates: bounded work per message, far within the visibility timeout.
pub const BACKFILL_PAGE: u32 = 100;
/// How many times starting a backfill re-reads the progress item after losing a write race.
const START_ATTEMPTS: usize = 4;

mod attr {
    pub const SEGMENT_ID: &str = "segment_id";
    pub const SEGMENT_VERSION: &str = "segment_version";
    pub const STATUS: &str = "status";
    pub const USERS_EVALUATED: &str = "users_evaluated";
    pub const CURSOR: &str = "cursor";
    pub const STARTED_AT: &str = "started_at";
    pub const FINISHED_AT: &str = "finished_at";
}

/// Whether a backfill is still walking the users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackfillStatus {
    Running,
    Done,
}

impl BackfillStatus {
    fn as_str(self) -> &'static str {
        match self {
            BackfillStatus::Running => "running",
            BackfillStatus::Done => "done",
        }
    }
}

/// Where the latest backfill of a segment stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackfillProgress {
    pub status: BackfillStatus,
    /// The segment version it evaluates.
    pub version: i64,
    pub users_evaluated: u64,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// The position after the last page evaluated (`profile::list_users`'s cursor); `None` at the start.
    #[serde(skip)]
    pub cursor: Option<String>,
    /// The progress item's own version, which every write bumps.
    #[serde(skip)]
    pub revision: i64,
}

/// The body of one `segment-backfill` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackfillMessage {
    pub workspace_id: String,
    pub segment_id: String,
    pub version: i64,
}

impl BackfillMessage {
    /// Reads a message body; the error names what is wrong.
    pub fn parse(body: &str) -> DomainResult<BackfillMessage> {
        let message: BackfillMessage = serde_json::from_str(body)
            .map_err(|e| DomainError::invalid("body", format!("not a backfill message: {e}")))?;
        if message.workspace_id.trim().is_empty() {
            return Err(DomainError::invalid("workspaceId", "must not be empty"));
        }
        if message.segment_id.trim().is_empty() {
            return Err(DomainError::invalid("segmentId", "must not be empty"));
        }
        Ok(message)
    }

    fn body(&self) -> DomainResult<String> {
        serde_json::to_string(self).map_err(|e| {
            DomainError::Corrupt(format!("a backfill message cannot be serialized: {e}"))
        })
    }
}

/// Starts the backfill of a segment's `version` (replacing any earlier one) and sends its first message.
pub async fn start_backfill(
    ports: &Ports,
    workspace_id: &str,
    segment_id: &str,
    version: i64,
) -> DomainResult<BackfillProgress> {
    let table = ports.table.as_ref();
    for _ in 0..START_ATTEMPTS {
        let previous = backfill_progress(table, workspace_id, segment_id).await?;
        let revision = previous.as_ref().map_or(0, |progress| progress.revision);
        let progress = BackfillProgress {
            status: BackfillStatus::Running,
            version,
            users_evaluated: 0,
            started_at: ports.clock.now(),
            finished_at: None,
            cursor: None,
            revision,
        };
        if write_progress(table, workspace_id, segment_id, &progress).await? {
            let message = BackfillMessage {
                workspace_id: workspace_id.to_string(),
                segment_id: segment_id.to_string(),
                version,
            };
            ports
                .queue
                .send_batch(
                    SEGMENT_BACKFILL_QUEUE,
                    vec![OutMessage::new(message.body()?)],
                )
                .await?;
            return Ok(progress);
        }
    }
    Err(DomainError::Conflict(format!(
        "the backfill of segment {segment_id} kept changing while it was started"
    )))
}

/// The latest backfill of a segment, if one was started.
pub async fn backfill_progress(
    table: &dyn Table,
    workspace_id: &str,
    segment_id: &str,
) -> DomainResult<Option<BackfillProgress>> {
    let Some(item) = table
        .get(&layout::segment_backfill_key(workspace_id, segment_id))
        .await?
    else {
        return Ok(None);
    };
    progress_of(&item).map(Some)
}

/// What one backfill message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// A page was evaluated; `more` when the message for the next page was sent.
    Evaluated { users: usize, more: bool },
    /// Nothing to do: the backfill is done, was replaced by a newer save, or another delivery of the
    /// message moved it on first.
    Skipped,
}

/// Handles one `segment-backfill` message: evaluates the page of users after the stored position, records
/// the progress, and sends the message for the next page. Safe to run again for the same message.
pub async fn run_backfill_step(
    ports: &Ports,
    message: &BackfillMessage,
) -> DomainResult<StepOutcome> {
    let table = ports.table.as_ref();
    let (workspace_id, segment_id) = (message.workspace_id.as_str(), message.segment_id.as_str());
    let Some(progress) = backfill_progress(table, workspace_id, segment_id).await? else {
        return Ok(StepOutcome::Skipped);
    };
    if progress.version != message.version || progress.status == BackfillStatus::Done {
        return Ok(StepOutcome::Skipped);
    }
    let definition = match super::store::get_segment(table, workspace_id, segment_id).await {
        Ok(segment) if segment.version == message.version => segment.definition,
        // Deleted or saved again since: the newer save started its own backfill.
        Ok(_) | Err(DomainError::NotFound(_)) => return Ok(StepOutcome::Skipped),
        Err(error) => return Err(error),
    };
    // The evaluation must see this version, not an index another process cached before the save.
    invalidate_index(ports, workspace_id);
    let page = profile::list_users(
        table,
        workspace_id,
        None,
        progress.cursor.as_deref(),
        BACKFILL_PAGE,
    )
    .await?;
    let now = ports.clock.now();
    let mut users = Vec::with_capacity(page.users.len());
    for summary in &page.users {
        let history = if reads_events(&definition) {
            hot_events(table, workspace_id, &summary.user_id, now).await?
        } else {
            Vec::new()
        };
        users.push(BackfillUser {
            user_id: summary.user_id.clone(),
            history,
        });
    }
    backfill_users(ports, workspace_id, segment_id, &users).await?;
    let more = page.next_cursor.is_some() && !page.users.is_empty();
    let next = BackfillProgress {
        status: if more {
            BackfillStatus::Running
        } else {
            BackfillStatus::Done
        },
        users_evaluated: progress.users_evaluated + users.len() as u64,
        finished_at: (!more).then_some(now),
        cursor: page.next_cursor.clone(),
        ..progress
    };
    if !write_progress(table, workspace_id, segment_id, &next).await? {
        return Ok(StepOutcome::Skipped);
    }
    if more {
        ports
            .queue
            .send_batch(
                SEGMENT_BACKFILL_QUEUE,
                vec![OutMessage::new(message.body()?)],
            )
            .await?;
    }
    Ok(StepOutcome::Evaluated {
        users: users.len(),
        more,
    })
}

/// Whether the definition counts or keeps events, so that a backfill replays users' hot events.
fn reads_events(definition: &SegmentDefinition) -> bool {
    let mut requirements = Requirements::default();
    requirements.add(&definition.condition);
    requirements.reads_any_event()
}

/// The user's hot events of the last 90 days (older ones may linger until the table's TTL removes them).
pub(crate) async fn hot_events(
    table: &dyn Table,
    workspace_id: &str,
    user_id: &str,
    now: Timestamp,
) -> DomainResult<Vec<Event>> {
    let pk = layout::profile_pk(workspace_id, Subject::User(user_id));
    let oldest = now - HOT_EVENT_TTL;
    let mut events = Vec::new();
    let mut cursor = None;
    loop {
        let page = table
            .query(
                Query::new(pk.as_str())
                    .prefix(layout::HOT_EVENT_SK_PREFIX)
                    .after(cursor),
            )
            .await?;
        for item in &page.items {
            let json = required_s(item, profile_attr::EVENT)?;
            let event: Event = serde_json::from_str(json)
                .map_err(|e| corrupt(item, &format!("holds an event that does not parse: {e}")))?;
            if event.timestamp >= oldest {
                events.push(event);
            }
        }
        cursor = page.cursor;
        if cursor.is_none() {
            return Ok(events);
        }
    }
}

/// Writes the progress as the item's next revision, if the stored one is still `progress.revision`;
/// false when another writer moved it first.
async fn write_progress(
    table: &dyn Table,
    workspace_id: &str,
    segment_id: &str,
    progress: &BackfillProgress,
) -> DomainResult<bool> {
    let mut item = Item::new(&layout::segment_backfill_key(workspace_id, segment_id))
        .with(attr::SEGMENT_ID, segment_id)
        .with(VERSION, progress.revision + 1)
        .with(attr::SEGMENT_VERSION, progress.version)
        .with(attr::STATUS, progress.status.as_str())
        .with(attr::USERS_EVALUATED, progress.users_evaluated as i64)
        .with(attr::STARTED_AT, progress.started_at.to_string());
    if let Some(cursor) = &progress.cursor {
        item.set(attr::CURSOR, cursor.as_str());
    }
    if let Some(finished_at) = progress.finished_at {
        item.set(attr::FINISHED_AT, finished_at.to_string());
    }
    match table
        .put(item, Some(Condition::VersionMatches(progress.revision)))
        .await
    {
        Ok(()) => Ok(true),
        Err(PortError::ConditionFailed) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

fn progress_of(item: &Item) -> DomainResult<BackfillProgress> {
    let number = |name: &str| {
        item.get_i64(name)
            .ok_or_else(|| corrupt(item, &format!("lacks the number attribute {name:?}")))
    };
    let status = match required_s(item, attr::STATUS)? {
        "running" => BackfillStatus::Running,
        "done" => BackfillStatus::Done,
        other => return Err(corrupt(item, &format!("has an unknown status {other:?}"))),
    };
    Ok(BackfillProgress {
        status,
        version: number(attr::SEGMENT_VERSION)?,
        users_evaluated: u64::try_from(number(attr::USERS_EVALUATED)?)
            .map_err(|_| corrupt(item, "counts a negative number of users"))?,
        started_at: required_time(item, attr::STARTED_AT)?,
        finished_at: optional_time(item, attr::FINISHED_AT)?,
        cursor: item.get_s(attr::CURSOR).map(str::to_string),
        revision: number(VERSION)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backfill_message_reads_back_and_a_bad_one_names_the_field() {
        let message = BackfillMessage {
            workspace_id: "ws_1".into(),
            segment_id: "vip".into(),
            version: 3,
        };
        assert_eq!(
            BackfillMessage::parse(&message.body().unwrap()).unwrap(),
            message
        );
        let error = BackfillMessage::parse(r#"{"workspaceId":"ws_1","segmentId":"","version":1}"#)
            .unwrap_err();
        assert!(error.to_string().starts_with("segmentId"), "{error}");
        assert!(BackfillMessage::parse("{}").is_err());
    }
}
