//! Real-time segment evaluation: accepted events go to the `segments` queue, and each message re-evaluates,
//! for each of its users, only the segments its events can affect, from the user's stored state; a
//! scheduled [`tick`] re-evaluates the users whose next check has come.
//!
//! Each user is updated with a read, an evaluation and a conditional write of the state's next version; a
//! writer that loses a race reads again and retries, so concurrent batches never lose an update. The state
//! remembers the last queue batches applied, so a redelivered message counts nothing twice. Membership
//! changes are applied and published by `membership::settle_changes`, once.

use std::collections::{BTreeMap, HashMap};

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tern_ports::{Item, Key, OutMessage, Ports, Query, SortCondition, Table};

use super::membership::{self, MembershipChange, SegmentState, WriteOutcome, settle_changes};
use super::store::load_index;
use super::{EventFacts, EventType, SegmentIndex};
use crate::ingest::{Event, EventKind, Subject};
use crate::profile::traits_of;
use crate::{DomainError, DomainResult, layout};

/// The logical queue accepted events travel on to segment evaluation.
pub const SEGMENTS_QUEUE: &str = "segments";
/// The largest `segments` message body, exclusive: SQS takes 256 KiB, and the margin keeps room for
/// attributes.
pub const MAX_SEGMENTS_MESSAGE_BYTES: usize = 240 * 1024;
/// How many times a user's state is read again after losing a write race, before giving up (the queue
/// message then comes back and tries again).
const MAX_ATTEMPTS: usize = 8;
/// How many users of one message are updated at the same time.
const CONCURRENT_USERS: usize = 8;
/// How many due entries one read of the due index returns.
const DUE_PAGE: u32 = 100;

/// An accepted event, reduced to what evaluation reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentEvent {
    pub message_id: String,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only when some segment reads this event.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub properties: Map<String, Value>,
    /// An identify call's traits (evaluation reads their names; the values are read from the profile).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub traits: Map<String, Value>,
    pub timestamp: Timestamp,
}

impl SegmentEvent {
    /// The facts a `performed` or `lastEvent` condition counts; `None` for identify calls and nameless
    /// pages and screens.
    fn facts(&self) -> Option<EventFacts<'_>> {
        let (kind, name) = match self.kind {
            EventKind::Track => (EventType::Track, self.event.as_deref()?),
            EventKind::Page => (EventType::Page, self.name.as_deref()?),
            EventKind::Screen => (EventType::Screen, self.name.as_deref()?),
            EventKind::Identify | EventKind::Group | EventKind::Alias => return None,
        };
        Some(EventFacts {
            kind,
            name,
            properties: &self.properties,
            at: self.timestamp,
        })
    }
}

/// The body of one `segments` queue message. `id` is unique per message: a user's state remembers the ids
/// it applied, so a redelivery is skipped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentBatch {
    pub id: String,
    pub workspace_id: String,
    pub events: Vec<SegmentEvent>,
}

impl SegmentBatch {
    /// Reads a message body; the error says what is wrong with it.
    pub fn parse(body: &str) -> DomainResult<SegmentBatch> {
        let batch: SegmentBatch = serde_json::from_str(body)
            .map_err(|e| DomainError::invalid("body", format!("not a segments batch: {e}")))?;
        if batch.workspace_id.trim().is_empty() {
            return Err(DomainError::invalid("workspaceId", "must not be empty"));
        }
        if batch.id.trim().is_empty() {
            return Err(DomainError::invalid("id", "must not be empty"));
        }
        Ok(batch)
    }
}

/// Sends a stored batch of accepted events to the `segments` queue, when the workspace has segments.
/// Only identified users' identify, track, page and screen calls are sent, with the properties only of
/// events some segment reads.
pub async fn publish_for_segments(
    ports: &Ports,
    workspace_id: &str,
    events: &[Event],
) -> DomainResult<()> {
    let index = load_index(ports, workspace_id).await?;
    if index.is_empty() {
        return Ok(());
    }
    let reduced: Vec<SegmentEvent> = events
        .iter()
        .filter_map(|event| reduce(&index, event))
        .collect();
    let messages = segment_bodies(workspace_id, reduced)?
        .into_iter()
        .map(OutMessage::new)
        .collect::<Vec<_>>();
    if !messages.is_empty() {
        ports.queue.send_batch(SEGMENTS_QUEUE, messages).await?;
    }
    Ok(())
}

fn reduce(index: &SegmentIndex, event: &Event) -> Option<SegmentEvent> {
    let Subject::User(user_id) = event.subject() else {
        return None;
    };
    let mut reduced = SegmentEvent {
        message_id: event.message_id.clone(),
        kind: event.kind,
        user_id: user_id.to_string(),
        event: event.event.clone(),
        name: event.name.clone(),
        properties: Map::new(),
        traits: Map::new(),
        timestamp: event.timestamp,
    };
    match event.kind {
        EventKind::Identify => reduced.traits = event.traits.clone(),
        EventKind::Track | EventKind::Page | EventKind::Screen => {
            let facts = EventFacts::from_event(event);
            if facts.is_some_and(|facts| index.requirements().reads_event(facts.kind, facts.name)) {
                reduced.properties = event.properties.clone();
            }
        }
        EventKind::Group | EventKind::Alias => return None,
    }
    Some(reduced)
}

/// Groups events into [`SegmentBatch`] bodies below [`MAX_SEGMENTS_MESSAGE_BYTES`], each with a new id.
fn segment_bodies(workspace_id: &str, events: Vec<SegmentEvent>) -> DomainResult<Vec<String>> {
    let serialize = |batch: &SegmentBatch| {
        serde_json::to_string(batch).map_err(|e| {
            DomainError::invalid("events", format!("cannot be serialized for segments: {e}"))
        })
    };
    let new_batch = || SegmentBatch {
        id: uuid::Uuid::new_v4().to_string(),
        workspace_id: workspace_id.to_string(),
        events: Vec::new(),
    };
    let head = serialize(&new_batch())?.len();
    let mut bodies = Vec::new();
    let mut current = new_batch();
    let mut size = head;
    for event in events {
        let length = serde_json::to_string(&event)
            .map_err(|e| DomainError::invalid("events", format!("cannot be serialized: {e}")))?
            .len()
            + 1;
        if head + length >= MAX_SEGMENTS_MESSAGE_BYTES {
            return Err(DomainError::invalid(
                "events",
                format!(
                    "event {} is {length} bytes for segments; the limit is {MAX_SEGMENTS_MESSAGE_BYTES}",
                    event.message_id
                ),
            ));
        }
        if size + length >= MAX_SEGMENTS_MESSAGE_BYTES {
            bodies.push(serialize(&std::mem::replace(&mut current, new_batch()))?);
            size = head;
        }
        size += length;
        current.events.push(event);
    }
    if !current.events.is_empty() {
        bodies.push(serialize(&current)?);
    }
    Ok(bodies)
}

/// What an evaluation changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evaluated {
    /// Users whose state was read.
    pub users: usize,
    pub entered: usize,
    pub exited: usize,
}

impl Evaluated {
    fn add(&mut self, other: Evaluated) {
        self.users += other.users;
        self.entered += other.entered;
        self.exited += other.exited;
    }

    fn of(changes: &[MembershipChange]) -> Evaluated {
        let entered = changes.iter().filter(|change| change.entered).count();
        Evaluated {
            users: 1,
            entered,
            exited: changes.len() - entered,
        }
    }
}

/// Handles one `segments` message: for each user, records the events in the state, re-evaluates the
/// segments they can affect (every segment for a user never seen before), stores the state, and applies and
/// publishes the membership changes. Safe to run again for the same message.
pub async fn evaluate_message(ports: &Ports, batch: &SegmentBatch) -> DomainResult<Evaluated> {
    let index = load_index(ports, &batch.workspace_id).await?;
    if index.is_empty() {
        return Ok(Evaluated::default());
    }
    let mut by_user: BTreeMap<&str, Vec<&SegmentEvent>> = BTreeMap::new();
    for event in &batch.events {
        by_user
            .entry(event.user_id.as_str())
            .or_default()
            .push(event);
    }
    let users: Vec<&str> = by_user.keys().copied().collect();
    let mut prefetched = read_users(ports.table.as_ref(), &batch.workspace_id, &users).await?;
    let now = ports.clock.now();
    let work: Vec<_> = by_user
        .into_iter()
        .map(|(user_id, events)| {
            let read = prefetched.remove(user_id).unwrap_or_default();
            let input = Input::Events {
                batch_id: &batch.id,
                events,
            };
            let user = UserUpdate {
                ports,
                workspace_id: &batch.workspace_id,
                index: &index,
                user_id,
                now,
            };
            async move { user.apply(input, Some(read)).await }
        })
        .collect();
    collect(work).await
}

/// Runs the updates of several users a few at a time; every update runs even if one fails, and the first
/// error is returned.
async fn collect(
    work: Vec<impl Future<Output = DomainResult<Evaluated>>>,
) -> DomainResult<Evaluated> {
    let results: Vec<DomainResult<Evaluated>> = futures::stream::iter(work)
        .buffer_unordered(CONCURRENT_USERS)
        .collect()
        .await;
    let mut total = Evaluated::default();
    for result in results {
        total.add(result?);
    }
    Ok(total)
}

/// Re-evaluates the time-dependent segments of the users whose next check is at or before `now`, visiting
/// only the due index entries whose time has come, and files each user under their new next check.
pub async fn tick(ports: &Ports, workspace_id: &str, now: Timestamp) -> DomainResult<Evaluated> {
    let index = load_index(ports, workspace_id).await?;
    let table = ports.table.as_ref();
    let mut total = Evaluated::default();
    for shard in 0..layout::SEGMENT_DUE_SHARDS {
        let mut cursor = None;
        loop {
            let page = table
                .query(
                    Query::new(layout::segment_due_pk(workspace_id, shard))
                        .sort(SortCondition::LessThan(layout::segment_due_sk_bound(now)))
                        .limit(DUE_PAGE)
                        .after(cursor),
                )
                .await?;
            let work: Vec<_> = page
                .items
                .iter()
                .map(|entry| visit_due(ports, workspace_id, &index, entry, now))
                .collect();
            total.add(collect(work).await?);
            cursor = page.cursor;
            if cursor.is_none() {
                break;
            }
        }
    }
    Ok(total)
}

/// [`tick`] for every workspace that has segments: what the schedule runs (an EventBridge rule on AWS, a
/// timer on the embedded engine). Every workspace is visited even if one fails; the first error is returned.
pub async fn tick_all(ports: &Ports, now: Timestamp) -> DomainResult<Evaluated> {
    let mut total = Evaluated::default();
    let mut first_error = None;
    for workspace in crate::workspace::list_workspaces(ports.table.as_ref()).await? {
        let visited = match load_index(ports, &workspace.id).await {
            Ok(index) if index.is_empty() => continue,
            Ok(_) => tick(ports, &workspace.id, now).await,
            Err(error) => Err(error),
        };
        match visited {
            Ok(evaluated) => total.add(evaluated),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(total),
    }
}

/// A user a backfill visits, with the events it replays for counters the user's state does not hold yet
/// (empty when the segment reads no event).
#[derive(Debug, Clone, Default)]
pub struct BackfillUser {
    pub user_id: String,
    pub history: Vec<Event>,
}

/// Re-evaluates one segment (and the segments that reference it) for each of `users`, through the same
/// conditional state write as the real-time path, so that each change is applied and published once. The
/// counters and last occurrences the segment reads that a user's state lacks are first rebuilt from the
/// user's `history`. `NotFound` when the workspace's index has no such segment.
pub async fn backfill_users(
    ports: &Ports,
    workspace_id: &str,
    segment_id: &str,
    users: &[BackfillUser],
) -> DomainResult<Evaluated> {
    let index = load_index(ports, workspace_id).await?;
    if index.get(segment_id).is_none() {
        return Err(DomainError::NotFound(format!("segment {segment_id}")));
    }
    let ids: Vec<&str> = users.iter().map(|user| user.user_id.as_str()).collect();
    let mut prefetched = read_users(ports.table.as_ref(), workspace_id, &ids).await?;
    let now = ports.clock.now();
    let work: Vec<_> = users
        .iter()
        .map(|visited| {
            let read = prefetched.remove(&visited.user_id).unwrap_or_default();
            let input = Input::Backfill {
                segment_id,
                history: &visited.history,
            };
            let user = UserUpdate {
                ports,
                workspace_id,
                index: &index,
                user_id: &visited.user_id,
                now,
            };
            async move { user.apply(input, Some(read)).await }
        })
        .collect();
    collect(work).await
}

async fn visit_due(
    ports: &Ports,
    workspace_id: &str,
    index: &SegmentIndex,
    entry: &Item,
    now: Timestamp,
) -> DomainResult<Evaluated> {
    let user_id = membership::due_entry_user(entry)?;
    let key = entry
        .key()
        .ok_or_else(|| DomainError::Corrupt("a due index entry has no key".into()))?;
    let user = UserUpdate {
        ports,
        workspace_id,
        index,
        user_id,
        now,
    };
    user.apply(Input::Due { entry: key }, None).await
}

/// A user's stored state item and profile item, either of which may be absent.
#[derive(Default)]
struct UserRead {
    state: Option<Item>,
    profile: Option<Item>,
}

/// Reads the state and profile items of several users with one `batch_get`.
async fn read_users(
    table: &dyn Table,
    workspace_id: &str,
    users: &[&str],
) -> DomainResult<HashMap<String, UserRead>> {
    let mut owners: HashMap<Key, (usize, bool)> = HashMap::new();
    for (position, user_id) in users.iter().enumerate() {
        owners.insert(
            layout::segment_state_key(workspace_id, user_id),
            (position, true),
        );
        owners.insert(
            layout::profile_key(workspace_id, Subject::User(user_id)),
            (position, false),
        );
    }
    let keys: Vec<Key> = owners.keys().cloned().collect();
    let mut reads: HashMap<String, UserRead> = HashMap::new();
    for item in table.batch_get(&keys).await? {
        let Some(&(position, is_state)) = item.key().and_then(|key| owners.get(&key)) else {
            continue;
        };
        let read = reads.entry(users[position].to_string()).or_default();
        if is_state {
            read.state = Some(item);
        } else {
            read.profile = Some(item);
        }
    }
    Ok(reads)
}

/// Why a user is re-evaluated.
enum Input<'a> {
    /// Events of one queue batch.
    Events {
        batch_id: &'a str,
        events: Vec<&'a SegmentEvent>,
    },
    /// The user's entry in the due index came due.
    Due { entry: Key },
    /// A backfill of one segment, with the user's past events.
    Backfill {
        segment_id: &'a str,
        history: &'a [Event],
    },
}

/// The update of one user's segment state.
struct UserUpdate<'a> {
    ports: &'a Ports,
    workspace_id: &'a str,
    index: &'a SegmentIndex,
    user_id: &'a str,
    now: Timestamp,
}

impl UserUpdate<'_> {
    /// Reads (or takes the prefetched) state, evaluates, writes the next version if it is still the
    /// latest, and settles the changes; on a lost race, reads again.
    async fn apply(
        &self,
        input: Input<'_>,
        mut prefetched: Option<UserRead>,
    ) -> DomainResult<Evaluated> {
        let table = self.ports.table.as_ref();
        for _ in 0..MAX_ATTEMPTS {
            let read = match prefetched.take() {
                Some(read) => read,
                None => read_users(table, self.workspace_id, &[self.user_id])
                    .await?
                    .remove(self.user_id)
                    .unwrap_or_default(),
            };
            let stored = SegmentState::from_item(self.user_id, read.state.as_ref())?;
            // A previous writer may have stopped before its changes were applied and published.
            settle_changes(self.ports, self.workspace_id, self.user_id, &stored.pending).await?;
            match &input {
                Input::Events { batch_id, .. } if stored.has_applied(batch_id) => {
                    return Ok(Evaluated::default());
                }
                Input::Due { entry } if !self.is_current_entry(&stored, entry) => {
                    // Filed under a time the user no longer has: nothing refers to the entry.
                    table.delete(entry, None).await?;
                    return Ok(Evaluated::default());
                }
                _ => {}
            }
            let traits = read
                .profile
                .as_ref()
                .map(traits_of)
                .transpose()?
                .unwrap_or_default();
            let mut next = stored.clone();
            next.pending = self.evaluate(&mut next, &traits, &input);
            if let Input::Events { batch_id, .. } = &input {
                next.remember_applied(batch_id);
            }
            if !stored.is_new() && !changes_anything(&stored, &next) {
                return Ok(Evaluated {
                    users: 1,
                    ..Evaluated::default()
                });
            }
            match membership::write_state(table, self.workspace_id, &next, stored.due).await? {
                WriteOutcome::Written => {
                    settle_changes(self.ports, self.workspace_id, self.user_id, &next.pending)
                        .await?;
                    return Ok(Evaluated::of(&next.pending));
                }
                WriteOutcome::Conflict => continue,
            }
        }
        Err(DomainError::Conflict(format!(
            "the segment state of user {} kept changing during {MAX_ATTEMPTS} attempts",
            self.user_id
        )))
    }

    fn is_current_entry(&self, stored: &SegmentState, entry: &Key) -> bool {
        stored.due.is_some_and(|due| {
            layout::segment_due_key(self.workspace_id, self.user_id, due) == *entry
        })
    }

    /// Records the input in the state, re-evaluates the segments it can affect, and returns the changes.
    fn evaluate(
        &self,
        user: &mut SegmentState,
        traits: &Map<String, Value>,
        input: &Input<'_>,
    ) -> Vec<MembershipChange> {
        let index = self.index;
        let requirements = index.requirements();
        let mut affected = index.affected();
        if user.is_new() {
            affected.everything();
        }
        match input {
            Input::Events { events, .. } => {
                for event in events {
                    if event.kind == EventKind::Identify {
                        affected.traits(event.traits.keys().map(String::as_str));
                    } else if let Some(facts) = event.facts() {
                        user.state.record_event(requirements, &facts, self.now);
                        affected.event(facts.kind, facts.name);
                    }
                }
            }
            Input::Due { .. } => {
                affected.time_dependent();
            }
            Input::Backfill {
                segment_id,
                history,
            } => {
                if let Some(segment) = index.get(segment_id) {
                    let facts = history.iter().filter_map(EventFacts::from_event);
                    user.state
                        .adopt_history(&segment.definition.condition, facts, self.now);
                }
                affected.segment(segment_id);
            }
        }
        user.state.compact(requirements, self.now);
        // Segments deleted since the last write are forgotten.
        user.members.retain(|id| index.get(id).is_some());
        user.checks.retain(|id, _| index.get(id).is_some());
        let mut changes = Vec::new();
        for segment in affected.in_order() {
            let outcome = index.reevaluate(
                &[segment],
                (self.user_id, traits, &user.state),
                &mut user.members,
                self.now,
            );
            match outcome.next_check {
                Some(check) => user.checks.insert(segment.id.clone(), ceil_second(check)),
                None => user.checks.remove(&segment.id),
            };
            for (ids, entered) in [(&outcome.entered, true), (&outcome.exited, false)] {
                changes.extend(ids.iter().map(|id| MembershipChange {
                    segment_id: (*id).to_string(),
                    entered,
                    at: self.now,
                }));
            }
        }
        // A check already past (it cannot normally be) is filed a second ahead, so one visit never
        // files the user under a time it is still visiting.
        user.due = user
            .earliest_check()
            .map(|due| due.max(self.now + SignedDuration::from_secs(1)));
        changes
    }
}

fn ceil_second(at: Timestamp) -> i64 {
    at.as_second() + i64::from(at.subsec_nanosecond() > 0)
}

/// Whether the next version differs from the stored one in anything but the batches it remembers.
fn changes_anything(stored: &SegmentState, next: &SegmentState) -> bool {
    stored.state != next.state
        || stored.members != next.members
        || stored.checks != next.checks
        || stored.due != next.due
        || !next.pending.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(message_id: &str, padding: usize) -> SegmentEvent {
        let mut properties = Map::new();
        properties.insert("pad".into(), Value::String("x".repeat(padding)));
        SegmentEvent {
            message_id: message_id.into(),
            kind: EventKind::Track,
            user_id: "u1".into(),
            event: Some("Viewed".into()),
            name: None,
            properties,
            traits: Map::new(),
            timestamp: "2026-03-01T09:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn bodies_stay_below_the_limit_and_keep_every_event_in_order() {
        let events: Vec<SegmentEvent> = (0..40).map(|i| event(&format!("m{i}"), 20_000)).collect();
        let bodies = segment_bodies("ws_1", events).unwrap();
        assert!(bodies.len() >= 4, "{}", bodies.len());
        let mut ids = Vec::new();
        let mut batch_ids = std::collections::BTreeSet::new();
        for body in &bodies {
            assert!(body.len() < MAX_SEGMENTS_MESSAGE_BYTES, "{}", body.len());
            let batch = SegmentBatch::parse(body).unwrap();
            assert_eq!(batch.workspace_id, "ws_1");
            batch_ids.insert(batch.id);
            ids.extend(batch.events.into_iter().map(|event| event.message_id));
        }
        assert_eq!(batch_ids.len(), bodies.len());
        let expected: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
        assert_eq!(ids, expected);
    }

    #[test]
    fn a_malformed_batch_says_what_is_wrong() {
        let error = SegmentBatch::parse(r#"{"id":"b","workspaceId":" ","events":[]}"#).unwrap_err();
        assert!(error.to_string().starts_with("workspaceId:"), "{error}");
        let error = SegmentBatch::parse("[]").unwrap_err();
        assert!(error.to_string().starts_with("body:"), "{error}");
    }

    #[test]
    fn checks_round_up_to_the_second() {
        let whole: Timestamp = "2026-03-01T09:00:00Z".parse().unwrap();
        let later: Timestamp = "2026-03-01T09:00:00.2Z".parse().unwrap();
        assert_eq!(ceil_second(whole), whole.as_second());
        assert_eq!(ceil_second(later), whole.as_second() + 1);
    }
}
