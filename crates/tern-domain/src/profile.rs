//! Reading profiles: one user with their traits, identities, groups and recent events, and the list of a
//! workspace's users, filtered by a trait.
//!
//! Profiles are written by [`crate::ingest::accept`]; the items and attributes are described in
//! [`crate::layout`].

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tern_ports::table::GSI1_SK;
use tern_ports::{Cursor, Item, Key, Query, SortCondition, Table};

use crate::ingest::{Event, Subject};
use crate::stored::{corrupt, optional_time, required_s};
use crate::{DomainError, DomainResult, layout};

/// How many recent events a user view holds, newest first.
pub const RECENT_EVENTS: u32 = 50;
/// The largest page of users.
pub const MAX_PAGE_SIZE: u32 = 100;
/// How many profiles one page of a filtered list examines at most. A filter that matches rarely then returns
/// a short (even empty) page with a cursor instead of reading the whole workspace in one request.
const MAX_EXAMINED_PER_PAGE: usize = 2000;
/// How many profiles one read of a shard asks for while filtering.
const FILTER_READ_SIZE: u32 = 100;

/// The attribute names of profile, group, event and link items (see [`crate::layout`]).
pub(crate) mod attr {
    pub const ENTITY: &str = "entity";
    pub const USER_ID: &str = "user_id";
    pub const ANONYMOUS_ID: &str = "anonymous_id";
    pub const GROUP_ID: &str = "group_id";
    pub const TIMEZONE: &str = "timezone";
    /// JSON text of the kept context fields.
    pub const CONTEXT: &str = "context";
    pub const FIRST_SEEN: &str = "first_seen";
    pub const LAST_SEEN: &str = "last_seen";
    /// JSON text of a hot event.
    pub const EVENT: &str = "event";
    pub const LINKED_AT: &str = "linked_at";
}

/// One user as the admin API shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub user_id: String,
    pub traits: Map<String, Value>,
    pub identities: Identities,
    /// The groups (accounts) the user belongs to, by group id.
    pub groups: Vec<GroupView>,
    /// The IANA timezone last reported, by a `timezone` trait or `context.timezone`.
    pub timezone: Option<String>,
    /// `ip`, `userAgent`, `locale` and `timezone` from the latest event that carried any of them.
    pub context: Map<String, Value>,
    pub first_seen: Option<Timestamp>,
    pub last_seen: Option<Timestamp>,
    /// Up to [`RECENT_EVENTS`] events, newest first, including those from before the user was identified.
    pub recent_events: Vec<Event>,
    /// The ids of the segments the user belongs to, sorted (from the user's segment state).
    #[serde(default)]
    pub segments: Vec<String>,
}

/// The ids that lead to one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identities {
    pub user_id: String,
    /// Anonymous ids (and alias previous ids) linked to the user, sorted.
    pub anonymous_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupView {
    pub group_id: String,
    pub traits: Map<String, Value>,
}

/// One user in a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSummary {
    pub user_id: String,
    pub traits: Map<String, Value>,
    pub timezone: Option<String>,
    pub first_seen: Option<Timestamp>,
    pub last_seen: Option<Timestamp>,
}

/// A page of users. `next_cursor` is `Some` when more users may follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserPage {
    pub users: Vec<UserSummary>,
    pub next_cursor: Option<String>,
}

/// `trait=name:value`: users whose trait `name` equals `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraitFilter {
    pub name: String,
    pub value: String,
}

impl TraitFilter {
    /// Parses `name:value` (the first colon separates them, so a value may contain colons).
    pub fn parse(text: &str) -> DomainResult<Self> {
        let Some((name, value)) = text.split_once(':') else {
            return Err(DomainError::invalid(
                "trait",
                "a trait filter is name:value, e.g. plan:pro",
            ));
        };
        if name.is_empty() {
            return Err(DomainError::invalid(
                "trait",
                "a trait filter needs a trait name before the colon",
            ));
        }
        Ok(Self {
            name: name.to_string(),
            value: value.to_string(),
        })
    }

    /// Whether a trait stored as `json` equals the filter's value: the JSON text itself (`30`, `true`,
    /// `"pro"`), or a string's content (`pro`).
    pub fn matches_json(&self, json: &str) -> bool {
        if json == self.value {
            return true;
        }
        json.starts_with('"')
            && serde_json::from_str::<String>(json).is_ok_and(|text| text == self.value)
    }

    fn matches(&self, item: &Item) -> bool {
        item.get_s(&layout::trait_attr(&self.name))
            .is_some_and(|json| self.matches_json(json))
    }
}

/// The user `user_id` of the workspace, or `None` when no event or import has named them.
pub async fn get_user(
    table: &dyn Table,
    workspace_id: &str,
    user_id: &str,
) -> DomainResult<Option<UserView>> {
    let subject = Subject::User(user_id);
    let Some(profile) = table
        .get(&layout::profile_key(workspace_id, subject))
        .await?
    else {
        return Ok(None);
    };
    let pk = layout::profile_pk(workspace_id, subject);
    let recent_events = recent_events(table, &pk).await?;
    let groups = groups_of(table, workspace_id, &pk).await?;
    let segment_state = table
        .get(&layout::segment_state_key(workspace_id, user_id))
        .await?;
    let segments =
        crate::segments::membership::SegmentState::from_item(user_id, segment_state.as_ref())?
            .members
            .into_iter()
            .collect();
    Ok(Some(UserView {
        user_id: user_id.to_string(),
        traits: traits_of(&profile)?,
        identities: Identities {
            user_id: user_id.to_string(),
            anonymous_ids: linked_ids_of(&profile),
        },
        groups,
        timezone: profile.get_s(attr::TIMEZONE).map(str::to_string),
        context: context_of(&profile)?,
        first_seen: optional_time(&profile, attr::FIRST_SEEN)?,
        last_seen: optional_time(&profile, attr::LAST_SEEN)?,
        recent_events,
        segments,
    }))
}

/// Where a page of users ended: the shard, and the last user id read in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ListPosition {
    #[serde(rename = "s")]
    shard: u8,
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    after: Option<String>,
}

/// A page of the workspace's users, shard by shard in user-id order within each shard, optionally only
/// those whose trait matches `filter`. `cursor` is a previous page's `next_cursor`.
pub async fn list_users(
    table: &dyn Table,
    workspace_id: &str,
    filter: Option<TraitFilter>,
    cursor: Option<&str>,
    limit: u32,
) -> DomainResult<UserPage> {
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        return Err(DomainError::invalid(
            "limit",
            format!("a page holds 1 to {MAX_PAGE_SIZE} users"),
        ));
    }
    let mut position = match cursor {
        Some(text) => decode_position(text)?,
        None => ListPosition {
            shard: 0,
            after: None,
        },
    };
    let limit = limit as usize;
    let mut users = Vec::new();
    let mut examined = 0;
    while position.shard < layout::USER_SHARDS {
        let wanted = match filter {
            Some(_) => FILTER_READ_SIZE,
            None => u32::try_from(limit - users.len()).unwrap_or(MAX_PAGE_SIZE),
        };
        let page = table
            .query(shard_query(workspace_id, &position, wanted))
            .await?;
        let shard_done = page.cursor.is_none();
        let read = page.items.len();
        for (index, item) in page.items.into_iter().enumerate() {
            examined += 1;
            position.after = Some(required_s(&item, GSI1_SK)?.to_string());
            if filter.as_ref().is_none_or(|filter| filter.matches(&item)) {
                users.push(summary_of(&item)?);
            }
            if users.len() == limit {
                if shard_done && index + 1 == read {
                    position = next_shard(&position);
                }
                return Ok(UserPage {
                    users,
                    next_cursor: cursor_for(&position),
                });
            }
        }
        if shard_done {
            position = next_shard(&position);
        }
        if examined >= MAX_EXAMINED_PER_PAGE {
            break;
        }
    }
    Ok(UserPage {
        users,
        next_cursor: cursor_for(&position),
    })
}

fn shard_query(workspace_id: &str, position: &ListPosition, limit: u32) -> Query {
    let query = Query::on_gsi1(layout::users_gsi1_pk(workspace_id, position.shard)).limit(limit);
    match &position.after {
        Some(after) => query.sort(SortCondition::GreaterThan(after.clone())),
        None => query,
    }
}

fn next_shard(position: &ListPosition) -> ListPosition {
    ListPosition {
        shard: position.shard + 1,
        after: None,
    }
}

/// The cursor of a position, or `None` past the last shard.
fn cursor_for(position: &ListPosition) -> Option<String> {
    (position.shard < layout::USER_SHARDS).then(|| Cursor::encode(position).0)
}

fn decode_position(text: &str) -> DomainResult<ListPosition> {
    Cursor(text.to_string())
        .decode::<ListPosition>()
        .filter(|position| position.shard < layout::USER_SHARDS)
        .ok_or_else(|| {
            DomainError::invalid(
                "cursor",
                "the cursor is not one a previous page of this list returned",
            )
        })
}

fn summary_of(item: &Item) -> DomainResult<UserSummary> {
    let user_id = required_s(item, attr::USER_ID)?;
    Ok(UserSummary {
        user_id: user_id.to_string(),
        traits: traits_of(item)?,
        timezone: item.get_s(attr::TIMEZONE).map(str::to_string),
        first_seen: optional_time(item, attr::FIRST_SEEN)?,
        last_seen: optional_time(item, attr::LAST_SEEN)?,
    })
}

/// The newest hot events of a profile partition.
async fn recent_events(table: &dyn Table, pk: &str) -> DomainResult<Vec<Event>> {
    let page = table
        .query(
            Query::new(pk)
                .prefix(layout::HOT_EVENT_SK_PREFIX)
                .backward()
                .limit(RECENT_EVENTS),
        )
        .await?;
    page.items
        .iter()
        .map(|item| {
            let json = required_s(item, attr::EVENT)?;
            serde_json::from_str(json)
                .map_err(|e| corrupt(item, &format!("holds an event that does not parse: {e}")))
        })
        .collect()
}

/// The groups of a profile with their traits: the memberships in its partition, then one `batch_get` of
/// the groups.
async fn groups_of(
    table: &dyn Table,
    workspace_id: &str,
    profile_pk: &str,
) -> DomainResult<Vec<GroupView>> {
    let mut group_ids = Vec::new();
    let mut cursor = None;
    loop {
        let page = table
            .query(
                Query::new(profile_pk)
                    .prefix(layout::PROFILE_GROUP_SK_PREFIX)
                    .after(cursor),
            )
            .await?;
        for item in &page.items {
            let group_id = required_s(item, attr::GROUP_ID)?;
            group_ids.push(group_id.to_string());
        }
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    if group_ids.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<Key> = group_ids
        .iter()
        .map(|group_id| layout::group_key(workspace_id, group_id))
        .collect();
    let mut traits_by_key: BTreeMap<Key, Map<String, Value>> = BTreeMap::new();
    for item in table.batch_get(&keys).await? {
        if let Some(key) = item.key() {
            traits_by_key.insert(key, traits_of(&item)?);
        }
    }
    let mut groups: Vec<GroupView> = group_ids
        .into_iter()
        .zip(keys)
        .map(|(group_id, key)| GroupView {
            group_id,
            traits: traits_by_key.remove(&key).unwrap_or_default(),
        })
        .collect();
    groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    Ok(groups)
}

/// The traits of a profile or group item (`t:<name>` attributes holding JSON text).
pub(crate) fn traits_of(item: &Item) -> DomainResult<Map<String, Value>> {
    let mut traits = Map::new();
    for (name, value) in &item.0 {
        let Some(trait_name) = name.strip_prefix(layout::TRAIT_ATTR_PREFIX) else {
            continue;
        };
        let json = value
            .as_s()
            .ok_or_else(|| corrupt(item, &format!("holds trait {name:?} as a non-string")))?;
        let parsed = serde_json::from_str(json)
            .map_err(|e| corrupt(item, &format!("holds trait {name:?} as invalid JSON: {e}")))?;
        traits.insert(trait_name.to_string(), parsed);
    }
    Ok(traits)
}

/// The ids linked to a user (`a:<id>` attributes), sorted.
fn linked_ids_of(item: &Item) -> Vec<String> {
    item.0
        .keys()
        .filter_map(|name| name.strip_prefix(layout::LINKED_ID_ATTR_PREFIX))
        .map(str::to_string)
        .collect()
}

fn context_of(item: &Item) -> DomainResult<Map<String, Value>> {
    match item.get_s(attr::CONTEXT) {
        None => Ok(Map::new()),
        Some(json) => serde_json::from_str(json)
            .map_err(|e| corrupt(item, &format!("holds a context that does not parse: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trait_filters_parse_at_the_first_colon_and_name_the_parameter() {
        assert_eq!(
            TraitFilter::parse("url:https://x").unwrap(),
            TraitFilter {
                name: "url".into(),
                value: "https://x".into()
            }
        );
        for bad in ["plan", ":pro", ""] {
            let error = TraitFilter::parse(bad).unwrap_err();
            assert!(
                matches!(&error, DomainError::Invalid { field, .. } if field == "trait"),
                "{bad:?}: {error}"
            );
        }
    }

    #[test]
    fn trait_filters_compare_json_text_and_string_content() {
        let filter = |text: &str| TraitFilter::parse(text).unwrap();
        assert!(filter("plan:pro").matches_json("\"pro\""));
        assert!(filter("plan:\"pro\"").matches_json("\"pro\""));
        assert!(!filter("plan:pro").matches_json("\"professional\""));
        assert!(filter("age:30").matches_json("30"));
        assert!(!filter("age:30").matches_json("30.5"));
        assert!(filter("vip:true").matches_json("true"));
        assert!(filter("name:Zoë \"Z\"").matches_json("\"Zoë \\\"Z\\\"\""));
        assert!(filter("empty:").matches_json("\"\""));
    }

    #[test]
    fn list_cursors_round_trip_and_foreign_ones_are_refused() {
        let position = ListPosition {
            shard: 3,
            after: Some("user#1".into()),
        };
        let cursor = cursor_for(&position).unwrap();
        assert_eq!(decode_position(&cursor).unwrap(), position);
        let beyond = Cursor::encode(&ListPosition {
            shard: layout::USER_SHARDS,
            after: None,
        });
        for bad in ["not a cursor", "e30", beyond.0.as_str()] {
            let error = decode_position(bad).unwrap_err();
            assert!(
                matches!(&error, DomainError::Invalid { field, .. } if field == "cursor"),
                "{bad:?}: {error}"
            );
        }
        assert_eq!(
            cursor_for(&ListPosition {
                shard: layout::USER_SHARDS,
                after: None
            }),
            None
        );
    }
}
