//! Where memberships are stored: each user's segment state item, the sharded member index with its count,
//! the records of changes, and their publication on the `segment-changes` queue.
//!
//! A change is decided by the writer whose conditional write of the user's state wins; the state item
//! carries it as *pending* until the next write replaces it. Applying a pending change is idempotent and
//! safe to repeat by any later reader of the state:
//! 1. the member item and the count move together in one transaction (put if absent and add 1, or delete
//!    if present and add -1), so a repeat changes nothing;
//! 2. the change record is written if absent: whoever writes it publishes the change, once; if the send
//!    fails the record is removed again, so a retry publishes it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tern_ports::table::{TTL, VERSION};
use tern_ports::{
    Condition, Cursor, Item, Key, OutMessage, PortError, Ports, Query, SortCondition, Table,
    TransactOp, Update,
};

use super::UserState;
use crate::ingest::store::HOT_EVENT_TTL;
use crate::stored::{corrupt, required_s, required_time};
use crate::{DomainError, DomainResult, layout};

/// The logical queue membership changes are published on, for journeys to consume.
pub const SEGMENT_CHANGES_QUEUE: &str = "segment-changes";
/// How many applied queue batches a user's state remembers, so that a redelivered one is skipped.
pub const APPLIED_BATCHES_KEPT: usize = 16;
/// The most members one page holds.
pub const MAX_MEMBERS_PAGE: u32 = 1000;

mod attr {
    pub const USER_ID: &str = "user_id";
    pub const STATE: &str = "state";
    pub const MEMBERS: &str = "members";
    pub const CHECKS: &str = "checks";
    pub const DUE: &str = "due";
    pub const APPLIED: &str = "applied";
    pub const PENDING: &str = "pending";
    pub const SEGMENT_ID: &str = "segment_id";
    pub const CHANGE: &str = "change";
    pub const AT: &str = "at";
    pub const ENTERED_AT: &str = "entered_at";
    pub const COUNT: &str = "count";
}

/// A user entering or leaving a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MembershipChange {
    pub segment_id: String,
    pub entered: bool,
    /// When the evaluation that decided it ran.
    pub at: Timestamp,
}

impl MembershipChange {
    fn kind(&self) -> &'static str {
        if self.entered { "entered" } else { "exited" }
    }

    /// The body of the change's message on [`SEGMENT_CHANGES_QUEUE`].
    pub fn message_body(&self, workspace_id: &str, user_id: &str) -> String {
        json!({
            "type": format!("segment.{}", self.kind()),
            "workspaceId": workspace_id,
            "segmentId": self.segment_id,
            "userId": user_id,
            "at": self.at.to_string(),
        })
        .to_string()
    }
}

/// A user's segment state as stored: what evaluation reads besides traits, the segments the user is in,
/// each segment's next check, and what makes writes safe to repeat.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SegmentState {
    pub user_id: String,
    /// 0 while nothing is stored: the user was never seen by segments.
    pub version: i64,
    pub state: UserState,
    pub members: BTreeSet<String>,
    /// Per segment, the next moment its membership could change with no new input (epoch seconds).
    pub checks: BTreeMap<String, i64>,
    /// The user's entry in the due index: the earliest of `checks`.
    pub due: Option<Timestamp>,
    /// The ids of the last queue batches applied, newest last.
    pub applied: VecDeque<String>,
    /// The changes of the latest write, until they are known to be applied and published.
    pub pending: Vec<MembershipChange>,
}

impl SegmentState {
    pub fn is_new(&self) -> bool {
        self.version == 0
    }

    pub fn has_applied(&self, batch_id: &str) -> bool {
        self.applied.iter().any(|id| id == batch_id)
    }

    pub fn remember_applied(&mut self, batch_id: &str) {
        self.applied.push_back(batch_id.to_string());
        while self.applied.len() > APPLIED_BATCHES_KEPT {
            self.applied.pop_front();
        }
    }

    /// The earliest next check, as the time the user is due.
    pub fn earliest_check(&self) -> Option<Timestamp> {
        self.checks
            .values()
            .min()
            .and_then(|&seconds| Timestamp::from_second(seconds).ok())
    }

    /// Reads a stored state item; `None` gives a new user's empty state.
    pub fn from_item(user_id: &str, item: Option<&Item>) -> DomainResult<SegmentState> {
        let Some(item) = item else {
            return Ok(SegmentState {
                user_id: user_id.to_string(),
                ..SegmentState::default()
            });
        };
        Ok(SegmentState {
            user_id: user_id.to_string(),
            version: item
                .get_i64(VERSION)
                .ok_or_else(|| corrupt(item, "lacks the number attribute \"version\""))?,
            state: json_attr(item, attr::STATE)?,
            members: json_attr(item, attr::MEMBERS)?,
            checks: json_attr(item, attr::CHECKS)?,
            due: match item.get_s(attr::DUE) {
                Some(_) => Some(required_time(item, attr::DUE)?),
                None => None,
            },
            applied: json_attr(item, attr::APPLIED)?,
            pending: json_attr(item, attr::PENDING)?,
        })
    }

    /// The item of the state's next version.
    fn to_item(&self, workspace_id: &str) -> DomainResult<Item> {
        let mut item = Item::new(&layout::segment_state_key(workspace_id, &self.user_id))
            .with(attr::USER_ID, self.user_id.as_str())
            .with(VERSION, self.version + 1)
            .with(attr::STATE, to_json(&self.state)?)
            .with(attr::MEMBERS, to_json(&self.members)?)
            .with(attr::CHECKS, to_json(&self.checks)?)
            .with(attr::APPLIED, to_json(&self.applied)?)
            .with(attr::PENDING, to_json(&self.pending)?);
        if let Some(due) = self.due {
            item.set(attr::DUE, due.to_string());
        }
        Ok(item)
    }
}

fn json_attr<T: for<'de> Deserialize<'de> + Default>(item: &Item, name: &str) -> DomainResult<T> {
    match item.get_s(name) {
        None => Ok(T::default()),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| corrupt(item, &format!("has an invalid {name}: {e}"))),
    }
}

fn to_json<T: Serialize>(value: &T) -> DomainResult<String> {
    serde_json::to_string(value)
        .map_err(|e| DomainError::Corrupt(format!("segment state cannot be serialized: {e}")))
}

/// Why a state write did not happen.
pub enum WriteOutcome {
    Written,
    /// Another writer stored a newer version first: read again and retry.
    Conflict,
}

/// Writes `state` as the version after `state.version`, if that is still the stored one, and moves the
/// user's due index entry from `previous_due` to `state.due` in the same transaction.
pub async fn write_state(
    table: &dyn Table,
    workspace_id: &str,
    state: &SegmentState,
    previous_due: Option<Timestamp>,
) -> DomainResult<WriteOutcome> {
    let mut ops = vec![TransactOp::Put {
        item: state.to_item(workspace_id)?,
        condition: Some(Condition::VersionMatches(state.version)),
    }];
    if previous_due != state.due {
        if let Some(previous) = previous_due {
            ops.push(TransactOp::Delete {
                key: layout::segment_due_key(workspace_id, &state.user_id, previous),
                condition: None,
            });
        }
        if let Some(due) = state.due {
            ops.push(TransactOp::Put {
                item: Item::new(&layout::segment_due_key(workspace_id, &state.user_id, due))
                    .with(attr::USER_ID, state.user_id.as_str()),
                condition: None,
            });
        }
    }
    match table.transact_write(ops).await {
        Ok(()) => Ok(WriteOutcome::Written),
        Err(PortError::TransactionCanceled { failed }) if failed.contains(&0) => {
            Ok(WriteOutcome::Conflict)
        }
        Err(error) => Err(error.into()),
    }
}

/// The user a due index entry files.
pub(super) fn due_entry_user(entry: &Item) -> DomainResult<&str> {
    required_s(entry, attr::USER_ID)
}

/// Applies and publishes the pending changes of a user's state that are not yet recorded. Safe to call
/// again, by any process, as often as needed: each change is applied to the index once and published once.
pub async fn settle_changes(
    ports: &Ports,
    workspace_id: &str,
    user_id: &str,
    changes: &[MembershipChange],
) -> DomainResult<usize> {
    if changes.is_empty() {
        return Ok(0);
    }
    let table = ports.table.as_ref();
    let record_keys: Vec<Key> = changes
        .iter()
        .map(|change| record_key(workspace_id, user_id, change))
        .collect();
    let recorded: BTreeSet<Key> = table
        .batch_get(&record_keys)
        .await?
        .iter()
        .filter_map(Item::key)
        .collect();
    let mut claimed = Vec::new();
    for (change, key) in changes.iter().zip(record_keys) {
        if recorded.contains(&key) {
            continue;
        }
        apply_to_index(table, workspace_id, user_id, change).await?;
        if claim_record(table, key.clone(), user_id, change).await? {
            claimed.push((change, key));
        }
    }
    if claimed.is_empty() {
        return Ok(0);
    }
    let messages = claimed
        .iter()
        .map(|(change, _)| OutMessage::new(change.message_body(workspace_id, user_id)))
        .collect();
    if let Err(error) = ports
        .queue
        .send_batch(SEGMENT_CHANGES_QUEUE, messages)
        .await
    {
        // Unclaim, so that the retry of this work publishes them.
        for (_, key) in &claimed {
            table.delete(key, None).await?;
        }
        return Err(error.into());
    }
    Ok(claimed.len())
}

fn record_key(workspace_id: &str, user_id: &str, change: &MembershipChange) -> Key {
    layout::segment_change_key(
        workspace_id,
        user_id,
        change.at,
        &change.segment_id,
        change.kind(),
    )
}

/// Writes the change's record if absent; true when this call wrote it (and so must publish it).
async fn claim_record(
    table: &dyn Table,
    key: Key,
    user_id: &str,
    change: &MembershipChange,
) -> DomainResult<bool> {
    let expires = (change.at + HOT_EVENT_TTL).as_second();
    let item = Item::new(&key)
        .with(attr::USER_ID, user_id)
        .with(attr::SEGMENT_ID, change.segment_id.as_str())
        .with(attr::CHANGE, change.kind())
        .with(attr::AT, change.at.to_string())
        .with(TTL, expires);
    match table.put(item, Some(Condition::NotExists)).await {
        Ok(()) => Ok(true),
        Err(PortError::ConditionFailed) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// Adds the user to (or removes them from) the member index and moves the count with it, in one
/// transaction whose condition makes a repeat change nothing.
async fn apply_to_index(
    table: &dyn Table,
    workspace_id: &str,
    user_id: &str,
    change: &MembershipChange,
) -> DomainResult<()> {
    let member = layout::segment_member_key(workspace_id, &change.segment_id, user_id);
    let count = layout::segment_count_key(
        workspace_id,
        &change.segment_id,
        layout::segment_member_shard(user_id),
    );
    let (member_op, by) = if change.entered {
        let item = Item::new(&member)
            .with(attr::USER_ID, user_id)
            .with(attr::ENTERED_AT, change.at.to_string());
        let op = TransactOp::Put {
            item,
            condition: Some(Condition::NotExists),
        };
        (op, 1_i64)
    } else {
        let op = TransactOp::Delete {
            key: member,
            condition: Some(Condition::Exists),
        };
        (op, -1)
    };
    let count_op = TransactOp::Update {
        key: count,
        update: Update::new().add(attr::COUNT, by),
        condition: None,
    };
    match table.transact_write(vec![member_op, count_op]).await {
        // The member was already in (or out of) the index: the change was applied before.
        Ok(()) => Ok(()),
        Err(PortError::TransactionCanceled { failed }) if !failed.is_empty() => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// One member of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user_id: String,
    pub entered_at: Timestamp,
}

/// A page of a segment's members; `next_cursor` is `Some` while more may follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberPage {
    pub members: Vec<Member>,
    pub next_cursor: Option<String>,
}

/// Where a walk of the members stands: a shard, and the last sort key read in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MemberPosition {
    #[serde(rename = "s")]
    shard: u8,
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    after: Option<String>,
}

/// A page of a segment's members, shard after shard (user-id order within a shard). `cursor` is a previous
/// page's `next_cursor`; `limit` is 1 to [`MAX_MEMBERS_PAGE`].
pub async fn members(
    table: &dyn Table,
    workspace_id: &str,
    segment_id: &str,
    cursor: Option<&str>,
    limit: u32,
) -> DomainResult<MemberPage> {
    if !(1..=MAX_MEMBERS_PAGE).contains(&limit) {
        return Err(DomainError::invalid(
            "limit",
            format!("a page holds 1 to {MAX_MEMBERS_PAGE} members"),
        ));
    }
    let mut position = match cursor {
        Some(text) => decode_position(text)?,
        None => MemberPosition {
            shard: 0,
            after: None,
        },
    };
    let mut found = Vec::new();
    while position.shard < layout::SEGMENT_MEMBER_SHARDS {
        let wanted = limit - found.len() as u32;
        let mut query = Query::new(layout::segment_members_pk(
            workspace_id,
            segment_id,
            position.shard,
        ))
        .limit(wanted);
        if let Some(after) = &position.after {
            query = query.sort(SortCondition::GreaterThan(after.clone()));
        }
        let page = table.query(query).await?;
        for item in &page.items {
            position.after = Some(required_s(item, tern_ports::table::SK)?.to_string());
            found.push(Member {
                user_id: required_s(item, attr::USER_ID)?.to_string(),
                entered_at: required_time(item, attr::ENTERED_AT)?,
            });
        }
        if page.cursor.is_none() {
            position = MemberPosition {
                shard: position.shard + 1,
                after: None,
            };
        }
        if found.len() as u32 == limit {
            break;
        }
    }
    let next_cursor =
        (position.shard < layout::SEGMENT_MEMBER_SHARDS).then(|| Cursor::encode(&position).0);
    Ok(MemberPage {
        members: found,
        next_cursor,
    })
}

fn decode_position(text: &str) -> DomainResult<MemberPosition> {
    Cursor(text.to_string())
        .decode::<MemberPosition>()
        .filter(|position| position.shard < layout::SEGMENT_MEMBER_SHARDS)
        .ok_or_else(|| {
            DomainError::invalid(
                "cursor",
                "the cursor is not one a previous page of these members returned",
            )
        })
}

/// How many members a segment has: the sum of its count shards, one `batch_get` of small items.
pub async fn member_count(
    table: &dyn Table,
    workspace_id: &str,
    segment_id: &str,
) -> DomainResult<u64> {
    let keys: Vec<Key> = (0..layout::SEGMENT_MEMBER_SHARDS)
        .map(|shard| layout::segment_count_key(workspace_id, segment_id, shard))
        .collect();
    let mut total: i64 = 0;
    for item in table.batch_get(&keys).await? {
        total += item
            .get_i64(attr::COUNT)
            .ok_or_else(|| corrupt(&item, "lacks the number attribute \"count\""))?;
    }
    u64::try_from(total)
        .map_err(|_| DomainError::Corrupt(format!("segment {segment_id} counts {total} members")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_message_names_the_change_workspace_segment_user_and_time() {
        let change = MembershipChange {
            segment_id: "vip".into(),
            entered: false,
            at: "2026-03-01T09:00:00Z".parse().unwrap(),
        };
        let body: serde_json::Value =
            serde_json::from_str(&change.message_body("ws_1", "u1")).unwrap();
        assert_eq!(
            body,
            json!({"type": "segment.exited", "workspaceId": "ws_1", "segmentId": "vip",
                   "userId": "u1", "at": "2026-03-01T09:00:00Z"})
        );
    }

    #[test]
    fn a_state_reads_back_what_was_written() {
        let mut state = SegmentState {
            user_id: "u1".into(),
            version: 4,
            due: Some("2026-03-01T09:00:00Z".parse().unwrap()),
            ..SegmentState::default()
        };
        state.members.insert("vip".into());
        state.checks.insert("vip".into(), 1_772_355_600);
        for i in 0..20 {
            state.remember_applied(&format!("b{i}"));
        }
        assert_eq!(state.applied.len(), APPLIED_BATCHES_KEPT);
        assert!(state.has_applied("b19") && !state.has_applied("b3"));
        let item = state.to_item("ws_1").unwrap();
        let read = SegmentState::from_item("u1", Some(&item)).unwrap();
        assert_eq!(read.version, 5);
        assert_eq!(SegmentState { version: 4, ..read }, state);
        assert!(SegmentState::from_item("u2", None).unwrap().is_new());
    }
}
