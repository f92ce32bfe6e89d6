//! Previews: how many users an unsaved definition would hold, and a few of them, computed by evaluating it
//! over the workspace's users as they are stored now (traits, segment state, and — for event conditions no
//! counter exists for yet — the hot events of the last 90 days, as a backfill would).
//!
//! A preview is bounded so that it answers within one request: it stops after [`PREVIEW_MAX_USERS`] users
//! ([`PREVIEW_MAX_USERS_WITH_EVENTS`] when the definition reads events, since each user's events are then
//! read) and says so with `complete: false` and the number of users scanned.

use std::collections::HashMap;

use serde::Serialize;
use tern_ports::{Key, Ports};

use super::backfill::hot_events;
use super::membership::SegmentState;
use super::store::{SegmentError, list_segments};
use super::{EventFacts, Requirements, SegmentDefinition, SegmentIndex, UserFacts, evaluate};
use crate::{DomainResult, layout, profile};

/// The most users a preview of a definition reading only traits, memberships and state evaluates.
pub const PREVIEW_MAX_USERS: u64 = 10_000;
/// The most users a preview of a definition reading events evaluates.
pub const PREVIEW_MAX_USERS_WITH_EVENTS: u64 = 1_000;
/// The most member ids a preview shows.
pub const PREVIEW_SAMPLE: usize = 20;
/// Users read per page.
const PREVIEW_PAGE: u32 = 100;

/// What a preview found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    /// Members among the users scanned.
    pub count: u64,
    /// Up to [`PREVIEW_SAMPLE`] members' ids, in the order the users were scanned.
    pub sample: Vec<String>,
    pub users_scanned: u64,
    /// False when the scan stopped at its bound before the last user.
    pub complete: bool,
}

/// Evaluates an unsaved definition (with `segment_id` as its id, which seeds an unseeded random bucket)
/// over the workspace's users. The definition is checked with the workspace's segments first (the segments
/// it references must exist).
pub async fn preview_segment(
    ports: &Ports,
    workspace_id: &str,
    segment_id: &str,
    definition: &SegmentDefinition,
) -> Result<Preview, SegmentError> {
    check_references(ports, workspace_id, segment_id, definition).await?;
    Ok(scan(ports, workspace_id, segment_id, definition).await?)
}

async fn check_references(
    ports: &Ports,
    workspace_id: &str,
    segment_id: &str,
    definition: &SegmentDefinition,
) -> Result<(), SegmentError> {
    let mut pairs: Vec<(String, SegmentDefinition)> =
        list_segments(ports.table.as_ref(), workspace_id)
            .await?
            .into_iter()
            .filter(|segment| segment.id != segment_id)
            .map(|segment| (segment.id, segment.definition))
            .collect();
    pairs.push((segment_id.to_string(), definition.clone()));
    SegmentIndex::build(&pairs)
        .map(|_| ())
        .map_err(SegmentError::Invalid)
}

async fn scan(
    ports: &Ports,
    workspace_id: &str,
    segment_id: &str,
    definition: &SegmentDefinition,
) -> DomainResult<Preview> {
    let table = ports.table.as_ref();
    let mut requirements = Requirements::default();
    requirements.add(&definition.condition);
    let reads_events = requirements.reads_any_event();
    let bound = if reads_events {
        PREVIEW_MAX_USERS_WITH_EVENTS
    } else {
        PREVIEW_MAX_USERS
    };
    let now = ports.clock.now();
    let mut preview = Preview {
        count: 0,
        sample: Vec::new(),
        users_scanned: 0,
        complete: false,
    };
    let mut cursor: Option<String> = None;
    loop {
        let limit = PREVIEW_PAGE.min(u32::try_from(bound - preview.users_scanned).unwrap_or(0));
        let page = profile::list_users(table, workspace_id, None, cursor.as_deref(), limit).await?;
        let owners: HashMap<Key, &str> = page
            .users
            .iter()
            .map(|user| {
                let key = layout::segment_state_key(workspace_id, &user.user_id);
                (key, user.user_id.as_str())
            })
            .collect();
        let keys: Vec<Key> = owners.keys().cloned().collect();
        let mut states: HashMap<&str, SegmentState> = HashMap::new();
        for item in table.batch_get(&keys).await? {
            if let Some(&user_id) = item.key().and_then(|key| owners.get(&key)) {
                states.insert(user_id, SegmentState::from_item(user_id, Some(&item))?);
            }
        }
        for user in &page.users {
            let mut state = states.remove(user.user_id.as_str()).unwrap_or_default();
            if reads_events {
                let history = hot_events(table, workspace_id, &user.user_id, now).await?;
                let facts = history.iter().filter_map(EventFacts::from_event);
                state.state.adopt_history(&definition.condition, facts, now);
            }
            let facts = UserFacts {
                user_id: &user.user_id,
                traits: &user.traits,
                state: &state.state,
                memberships: &state.members,
            };
            preview.users_scanned += 1;
            if evaluate(segment_id, &definition.condition, &facts, now).member {
                preview.count += 1;
                if preview.sample.len() < PREVIEW_SAMPLE {
                    preview.sample.push(user.user_id.clone());
                }
            }
        }
        cursor = page.next_cursor;
        if cursor.is_none() {
            preview.complete = true;
            return Ok(preview);
        }
        if preview.users_scanned >= bound {
            return Ok(preview);
        }
    }
}
