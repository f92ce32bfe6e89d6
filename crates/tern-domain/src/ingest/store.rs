//! Storing accepted events: dedupe, the lake, the hot copy, profiles, identity links and groups.
//!
//! The order is chosen so that nothing accepted is ever lost and a retried batch changes nothing:
//! 1. events repeated within the batch are dropped, and one `batch_get` reads the dedupe markers of the rest
//!    (already stored → duplicate) together with the identity links of their anonymous ids;
//! 2. at the same time, the survivors go to the `lake` queue, as [`LakeBatch`](super::LakeBatch) messages,
//!    and their dedupe markers are claimed with conditional writes (a marker that loses a race to a
//!    concurrent request makes its event a duplicate; the lake may then hold it twice, and its readers
//!    dedupe on `message_id`); should the lake refuse them, the markers are released;
//! 3. at the same time, the hot copies and one merged update per profile are written;
//! 4. then identity links (with the anonymous history), then groups;
//! 5. when the workspace has segments, the events go to the `segments` queue for real-time evaluation.
//!
//! Every write of steps 2 to 4 is idempotent. When a step after the claim fails, the claimed markers are
//! released before the error is returned, so that the client's retry stores the events instead of
//! reporting them as duplicates.
//!
//! Port calls stay few, and the ones that do not depend on each other are made together, so that the
//! embedded engine commits them in one transaction and writes a profile's page once: a batch of a hundred
//! events from twenty users costs one read, two rounds of writes (queue send with the marker transaction,
//! then hot events with the profile transaction), and a few calls for links and groups.

mod lake;
mod links;
mod plan;

use std::collections::{HashMap, HashSet};

use jiff::{SignedDuration, Timestamp};
use tern_ports::table::{GSI1_PK, GSI1_SK, MAX_TRANSACT_ITEMS, TTL};
use tern_ports::{
    Condition, Item, Key, OutMessage, PortError, Ports, Table, TransactOp, Update, WriteOp,
};

pub use self::lake::MAX_LAKE_MESSAGE_BYTES;
use self::plan::{GroupChanges, Plan, ProfileChanges};
use super::{Event, EventKind, Subject};
use crate::profile::attr;
use crate::segments::realtime::publish_for_segments;
use crate::stored::required_s;
use crate::{DomainError, DomainResult, layout};

/// How long the hot copy of an event stays in the table.
pub const HOT_EVENT_TTL: SignedDuration = SignedDuration::from_hours(90 * 24);
/// How long a message id is remembered for dedupe: Segment's seven days, plus an hour of margin for clients
/// that retry late.
pub const DEDUPE_WINDOW: SignedDuration = SignedDuration::from_hours(7 * 24 + 1);
/// The logical queue the lake writer reads.
pub const LAKE_QUEUE: &str = "lake";
/// The most attributes one update names: DynamoDB limits an update expression to 4 KB, so a profile update
/// touching more traits than this is split into several updates.
const MAX_ATTRS_PER_UPDATE: usize = 100;

/// What became of the events handed to [`accept`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Events stored for the first time.
    pub stored: usize,
    /// Events whose `messageId` was already stored (within the dedupe window); nothing was written for them.
    pub duplicates: usize,
}

/// Stores validated events of one workspace: dedupe, lake, hot copy, profiles, identities, groups.
pub async fn accept(
    ports: &Ports,
    workspace_id: &str,
    events: Vec<Event>,
) -> DomainResult<Accepted> {
    let received = events.len();
    if events.is_empty() {
        return Ok(Accepted::default());
    }
    let now = ports.clock.now();
    let table = ports.table.as_ref();
    let unique = unique_in_batch(events);
    let known = read_markers_and_links(table, workspace_id, &unique).await?;
    let fresh: Vec<Event> = unique
        .into_iter()
        .filter(|event| !known.stored_messages.contains(&event.message_id))
        .collect();
    if fresh.is_empty() {
        return Ok(Accepted {
            stored: 0,
            duplicates: received,
        });
    }
    let bodies = serialize(&fresh)?;
    let (sent, claimed) = futures::join!(
        send_to_lake(ports, workspace_id, &fresh, &bodies),
        claim_markers(table, workspace_id, &fresh, now)
    );
    let claimed = claimed?;
    if let Err(error) = sent {
        let won: Vec<Event> = won_events(&fresh, &claimed);
        return Err(release_markers(table, workspace_id, &won, error).await);
    }
    let (events, bodies): (Vec<Event>, Vec<String>) = fresh
        .into_iter()
        .zip(bodies)
        .zip(&claimed)
        .filter_map(|(pair, won)| won.then_some(pair))
        .unzip();
    if events.is_empty() {
        return Ok(Accepted {
            stored: 0,
            duplicates: received,
        });
    }
    let stored = async {
        store_claimed(table, workspace_id, &events, &bodies, &known.links, now).await?;
        publish_for_segments(ports, workspace_id, &events).await
    };
    if let Err(error) = stored.await {
        return Err(release_markers(table, workspace_id, &events, error).await);
    }
    Ok(Accepted {
        stored: events.len(),
        duplicates: received - events.len(),
    })
}

/// The first event of each message id, in arrival order; later repeats are duplicates.
fn unique_in_batch(events: Vec<Event>) -> Vec<Event> {
    let mut seen = HashSet::with_capacity(events.len());
    events
        .into_iter()
        .filter(|event| seen.insert(event.message_id.clone()))
        .collect()
}

/// What the table already knows about a batch.
struct Known {
    /// Message ids stored within the dedupe window.
    stored_messages: HashSet<String>,
    /// Identity links of the batch's anonymous and previous ids: linked id → user id.
    links: HashMap<String, String>,
}

/// Reads the batch's dedupe markers and identity links with one `batch_get`.
async fn read_markers_and_links(
    table: &dyn Table,
    workspace_id: &str,
    events: &[Event],
) -> DomainResult<Known> {
    let mut markers = HashMap::with_capacity(events.len());
    let mut links = HashMap::new();
    for event in events {
        let marker = layout::dedupe_key(workspace_id, event.subject(), &event.message_id);
        markers.insert(marker, event.message_id.as_str());
        for linked_id in ids_to_look_up(event) {
            links.insert(
                layout::identity_link_key(workspace_id, linked_id),
                linked_id,
            );
        }
    }
    let keys: Vec<Key> = markers.keys().chain(links.keys()).cloned().collect();
    let items = table.batch_get(&keys).await?;
    let mut known = Known {
        stored_messages: HashSet::new(),
        links: HashMap::new(),
    };
    for item in items {
        let Some(key) = item.key() else { continue };
        if let Some(message_id) = markers.get(&key) {
            known.stored_messages.insert(message_id.to_string());
        } else if let Some(linked_id) = links.get(&key) {
            let user_id = required_s(&item, attr::USER_ID)?;
            known
                .links
                .insert(linked_id.to_string(), user_id.to_string());
        }
    }
    Ok(known)
}

/// The ids of an event whose links matter: an anonymous-only event is stored under the user its id is
/// linked to, and an identify or alias that repeats a known link has nothing to merge.
fn ids_to_look_up(event: &Event) -> impl Iterator<Item = &str> {
    let anonymous = match (event.kind, &event.user_id) {
        (_, None) | (EventKind::Identify | EventKind::Alias, Some(_)) => {
            event.anonymous_id.as_deref()
        }
        _ => None,
    };
    let previous = match event.kind {
        EventKind::Alias => event.previous_id.as_deref(),
        _ => None,
    };
    anonymous.into_iter().chain(previous)
}

/// Each event as JSON, serialized once for both the lake and the hot copy.
fn serialize(events: &[Event]) -> DomainResult<Vec<String>> {
    events
        .iter()
        .map(|event| {
            serde_json::to_string(event).map_err(|e| {
                DomainError::invalid(
                    "events",
                    format!("event {} cannot be serialized: {e}", event.message_id),
                )
            })
        })
        .collect()
}

async fn send_to_lake(
    ports: &Ports,
    workspace_id: &str,
    events: &[Event],
    bodies: &[String],
) -> DomainResult<()> {
    let pairs: Vec<(&str, &str)> = events
        .iter()
        .zip(bodies)
        .map(|(event, body)| (event.message_id.as_str(), body.as_str()))
        .collect();
    let messages = lake::lake_bodies(workspace_id, &pairs)?
        .into_iter()
        .map(OutMessage::new)
        .collect();
    ports.queue.send_batch(LAKE_QUEUE, messages).await?;
    Ok(())
}

/// Writes each event's dedupe marker if absent, in transactions of up to 100. Returns, per event, whether
/// this call claimed it; an event whose marker another request wrote first is a duplicate. On failure the
/// markers claimed so far are released.
async fn claim_markers(
    table: &dyn Table,
    workspace_id: &str,
    events: &[Event],
    now: Timestamp,
) -> DomainResult<Vec<bool>> {
    let ttl = epoch_after(now, DEDUPE_WINDOW);
    let mut claimed = vec![false; events.len()];
    let indexes: Vec<usize> = (0..events.len()).collect();
    for chunk in indexes.chunks(MAX_TRANSACT_ITEMS) {
        let mut pending = chunk.to_vec();
        while !pending.is_empty() {
            let ops = pending
                .iter()
                .map(|&i| TransactOp::Put {
                    item: marker_item(workspace_id, &events[i], ttl),
                    condition: Some(Condition::NotExists),
                })
                .collect();
            match table.transact_write(ops).await {
                Ok(()) => {
                    pending.iter().for_each(|&i| claimed[i] = true);
                    break;
                }
                // Those markers exist: their events were stored by a concurrent request. Claim the rest.
                Err(PortError::TransactionCanceled { failed }) if !failed.is_empty() => {
                    let lost: HashSet<usize> = failed.into_iter().collect();
                    pending = pending
                        .into_iter()
                        .enumerate()
                        .filter_map(|(position, i)| (!lost.contains(&position)).then_some(i))
                        .collect();
                }
                Err(error) => {
                    let won = won_events(events, &claimed);
                    return Err(release_markers(table, workspace_id, &won, error.into()).await);
                }
            }
        }
    }
    Ok(claimed)
}

/// The events whose markers this request claimed.
fn won_events(events: &[Event], claimed: &[bool]) -> Vec<Event> {
    events
        .iter()
        .zip(claimed)
        .filter(|(_, won)| **won)
        .map(|(event, _)| event.clone())
        .collect()
}

fn marker_item(workspace_id: &str, event: &Event, ttl: i64) -> Item {
    Item::new(&layout::dedupe_key(
        workspace_id,
        event.subject(),
        &event.message_id,
    ))
    .with(attr::ENTITY, "dedupe_marker")
    .with(TTL, ttl)
}

/// Deletes the markers of `events` after a later step failed with `error`, so that a retry stores the
/// events; returns the error to report.
async fn release_markers(
    table: &dyn Table,
    workspace_id: &str,
    events: &[Event],
    error: DomainError,
) -> DomainError {
    if events.is_empty() {
        return error;
    }
    let deletes = events
        .iter()
        .map(|event| {
            WriteOp::Delete(layout::dedupe_key(
                workspace_id,
                event.subject(),
                &event.message_id,
            ))
        })
        .collect();
    match table.batch_write(deletes).await {
        Ok(()) => error,
        Err(release_error) => DomainError::Port(PortError::Other(format!(
            "{error}; the dedupe markers of the failed batch could not be released either \
             ({release_error}), so a retry within the dedupe window reports its events as duplicates"
        ))),
    }
}

/// Steps after the claim: hot copies, profiles, identity links, groups.
async fn store_claimed(
    table: &dyn Table,
    workspace_id: &str,
    events: &[Event],
    bodies: &[String],
    stored_links: &HashMap<String, String>,
    now: Timestamp,
) -> DomainResult<()> {
    let plan = Plan::build(workspace_id, events, stored_links);
    let updates = plan
        .profiles
        .values()
        .map(|changes| profile_update(workspace_id, changes))
        .collect();
    futures::try_join!(
        write_hot_events(table, workspace_id, events, bodies, &plan.subjects, now),
        write_updates(table, updates)
    )?;
    links::link_identities(table, workspace_id, &plan, stored_links).await?;
    write_groups(table, workspace_id, &plan).await
}

async fn write_hot_events(
    table: &dyn Table,
    workspace_id: &str,
    events: &[Event],
    bodies: &[String],
    subjects: &[Subject<'_>],
    now: Timestamp,
) -> DomainResult<()> {
    let ttl = epoch_after(now, HOT_EVENT_TTL);
    let puts = events
        .iter()
        .zip(bodies)
        .zip(subjects)
        .map(|((event, body), subject)| {
            let key = Key::new(
                layout::profile_pk(workspace_id, *subject),
                layout::hot_event_sk(event.timestamp, &event.message_id),
            );
            WriteOp::Put(
                Item::new(&key)
                    .with(attr::ENTITY, "event")
                    .with(attr::EVENT, body.as_str())
                    .with(TTL, ttl),
            )
        })
        .collect();
    table.batch_write(puts).await?;
    Ok(())
}

/// One update applying a batch's merged changes to a profile, without reading it.
fn profile_update(workspace_id: &str, changes: &ProfileChanges<'_>) -> (Key, Update) {
    let key = layout::profile_key(workspace_id, changes.subject);
    let mut update = Update::new()
        .set(attr::ENTITY, "profile")
        .set(attr::LAST_SEEN, changes.last_seen.to_string())
        .set_if_absent(attr::FIRST_SEEN, changes.first_seen.to_string());
    update = match changes.subject {
        Subject::User(user_id) => update
            .set(attr::USER_ID, user_id)
            .set(
                GSI1_PK,
                layout::users_gsi1_pk(workspace_id, layout::user_shard(user_id)),
            )
            .set(GSI1_SK, user_id),
        Subject::Anonymous(anonymous_id) => update.set(attr::ANONYMOUS_ID, anonymous_id),
    };
    update = apply_traits(update, &changes.traits);
    if let Some(context) = &changes.context {
        update = update.set(
            attr::CONTEXT,
            serde_json::Value::from(context.clone()).to_string(),
        );
    }
    if let Some(timezone) = &changes.timezone {
        update = update.set(attr::TIMEZONE, timezone.as_str());
    }
    for (linked_id, at) in &changes.linked_ids {
        update = update.set_if_absent(&layout::linked_id_attr(linked_id), at.to_string());
    }
    (key, update)
}

/// Sets each trait as its JSON text, and removes those an explicit null cleared.
fn apply_traits(
    mut update: Update,
    traits: &std::collections::BTreeMap<&str, Option<&serde_json::Value>>,
) -> Update {
    for (name, value) in traits {
        let attr_name = layout::trait_attr(name);
        update = match value {
            Some(value) => update.set(&attr_name, value.to_string()),
            None => update.remove(&attr_name),
        };
    }
    update
}

/// Applies updates to distinct items with as few calls as possible: transactions of up to 100, and an update
/// naming too many attributes split over successive rounds.
async fn write_updates(table: &dyn Table, updates: Vec<(Key, Update)>) -> DomainResult<()> {
    let mut rounds: Vec<Vec<TransactOp>> = Vec::new();
    for (key, update) in updates {
        for (round, part) in split_update(update).into_iter().enumerate() {
            if rounds.len() <= round {
                rounds.push(Vec::new());
            }
            rounds[round].push(TransactOp::Update {
                key: key.clone(),
                update: part,
                condition: None,
            });
        }
    }
    for round in rounds {
        let mut ops = round.into_iter().peekable();
        while ops.peek().is_some() {
            let chunk: Vec<TransactOp> = ops.by_ref().take(MAX_TRANSACT_ITEMS).collect();
            transact_or_one_by_one(table, chunk).await?;
        }
    }
    Ok(())
}

/// Runs unconditional updates as one transaction; when DynamoDB cancels it because another request was
/// writing one of the items at the same moment, applies them one by one instead (each is idempotent).
async fn transact_or_one_by_one(table: &dyn Table, ops: Vec<TransactOp>) -> DomainResult<()> {
    match table.transact_write(ops.clone()).await {
        Ok(()) => Ok(()),
        Err(PortError::Throttled(_) | PortError::TransactionCanceled { .. }) => {
            for op in ops {
                if let TransactOp::Update { key, update, .. } = op {
                    table.update(&key, update, None).await?;
                }
            }
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

/// Splits an update naming more than [`MAX_ATTRS_PER_UPDATE`] attributes into parts applied in order; the
/// first part keeps everything but the overflow of sets and removes.
fn split_update(update: Update) -> Vec<Update> {
    let named =
        update.set.len() + update.set_if_absent.len() + update.remove.len() + update.add.len();
    if named <= MAX_ATTRS_PER_UPDATE {
        return vec![update];
    }
    let Update {
        set,
        set_if_absent,
        remove,
        add,
    } = update;
    let mut parts = vec![Update {
        set_if_absent,
        add,
        ..Update::default()
    }];
    let changes = set
        .into_iter()
        .map(|(name, value)| (name, Some(value)))
        .chain(remove.into_iter().map(|name| (name, None)));
    for (name, value) in changes {
        let last = parts.last_mut().expect("parts start with one update");
        let full = last.set.len() + last.set_if_absent.len() + last.remove.len() + last.add.len()
            >= MAX_ATTRS_PER_UPDATE;
        let part = if full {
            parts.push(Update::default());
            parts.last_mut().expect("just pushed")
        } else {
            last
        };
        match value {
            Some(value) => part.set.push((name, value)),
            None => part.remove.push(name),
        }
    }
    parts.retain(|part| !part.is_empty());
    parts
}

/// Group traits (one merged update per group) and memberships, both ways.
async fn write_groups(table: &dyn Table, workspace_id: &str, plan: &Plan<'_>) -> DomainResult<()> {
    if plan.groups.is_empty() {
        return Ok(());
    }
    let updates = plan
        .groups
        .iter()
        .map(|(group_id, changes)| group_update(workspace_id, group_id, changes))
        .collect();
    write_updates(table, updates).await?;
    let memberships = plan
        .groups
        .iter()
        .flat_map(|(group_id, changes)| {
            changes.members.values().flat_map(move |(member, at)| {
                membership_items(workspace_id, group_id, *member, *at)
            })
        })
        .map(WriteOp::Put)
        .collect();
    table.batch_write(memberships).await?;
    Ok(())
}

fn group_update(workspace_id: &str, group_id: &str, changes: &GroupChanges<'_>) -> (Key, Update) {
    let update = Update::new()
        .set(attr::ENTITY, "group")
        .set(attr::GROUP_ID, group_id)
        .set(attr::LAST_SEEN, changes.last_seen.to_string())
        .set_if_absent(attr::FIRST_SEEN, changes.first_seen.to_string());
    (
        layout::group_key(workspace_id, group_id),
        apply_traits(update, &changes.traits),
    )
}

/// The member item in the group's partition and its mirror in the member's profile partition.
fn membership_items(
    workspace_id: &str,
    group_id: &str,
    member: Subject<'_>,
    at: Timestamp,
) -> [Item; 2] {
    let (id_attr, id) = match member {
        Subject::User(user_id) => (attr::USER_ID, user_id),
        Subject::Anonymous(anonymous_id) => (attr::ANONYMOUS_ID, anonymous_id),
    };
    let member_item = Item::new(&layout::group_member_key(workspace_id, group_id, member))
        .with(attr::ENTITY, "group_member")
        .with(attr::GROUP_ID, group_id)
        .with(id_attr, id)
        .with(attr::LAST_SEEN, at.to_string());
    let mirror = Item::new(&layout::profile_group_key(workspace_id, member, group_id))
        .with(attr::ENTITY, "profile_group")
        .with(attr::GROUP_ID, group_id)
        .with(attr::LAST_SEEN, at.to_string());
    [member_item, mirror]
}

/// Epoch seconds `after` from `now`, as a `ttl` attribute holds them.
fn epoch_after(now: Timestamp, after: SignedDuration) -> i64 {
    now.as_second() + after.as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_update_is_split_and_loses_nothing() {
        let mut update = Update::new()
            .set_if_absent("first_seen", "x")
            .set("last_seen", "y");
        for i in 0..250 {
            update = update.set(&format!("t:{i}"), "1");
        }
        update = update.remove("t:gone");
        let parts = split_update(update.clone());
        assert!(parts.len() >= 3, "{} parts", parts.len());
        for part in &parts {
            let named = part.set.len() + part.set_if_absent.len() + part.remove.len();
            assert!(named <= MAX_ATTRS_PER_UPDATE, "{named}");
        }
        let key = Key::new("p", "s");
        for stored in [
            None,
            Some(Item::new(&key).with("t:gone", "1").with("first_seen", "w")),
        ] {
            let in_parts = parts
                .iter()
                .fold(stored.clone(), |item, part| Some(part.apply(&key, item)));
            assert_eq!(in_parts, Some(update.apply(&key, stored)));
        }
    }

    #[test]
    fn a_small_update_stays_whole() {
        let update = Update::new().set("a", "1").remove("b");
        assert_eq!(split_update(update.clone()), vec![update]);
    }
}
