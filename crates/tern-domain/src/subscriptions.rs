//! Subscription groups and each user's state in them.
//!
//! A group (a newsletter, product updates…) belongs to one channel (`email` or `webhook`) and is `optIn`
//! or `optOut`. A user's recorded state in a group is `subscribed` or `unsubscribed`, with when and through
//! what it changed. The effective state: in an opt-out group a user counts as subscribed until they
//! unsubscribe; in an opt-in group only once they subscribe. States are kept next to the profile
//! (`SUB#<groupId>`, see [`crate::layout`]); a later change replaces an earlier one, and a change older
//! than the recorded one (an identify that arrives late) is ignored.
//!
//! An identify changes states with the trait `subscriptions`: an object from group id to `true`
//! (subscribe) or `false` (unsubscribe), applied by [`apply_from_traits`]. `docs/subscriptions.md` has
//! the whole picture.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tern_ports::{Condition, Item, PortError, Query, Table};

use crate::stored::{corrupt, required_s, required_time};
use crate::{DomainError, DomainResult, layout};

/// The trait of an identify that carries subscription changes.
pub const SUBSCRIPTIONS_TRAIT: &str = "subscriptions";
/// The longest group id.
pub const MAX_ID_LENGTH: usize = 64;
/// The longest group name.
pub const MAX_NAME_LENGTH: usize = 200;
/// How many groups one list query reads at a time.
const LIST_READ_SIZE: u32 = 200;
/// How often a state change is retried when another change lands between its read and its write.
const STATE_WRITE_ATTEMPTS: usize = 3;

mod attr {
    pub const GROUP_ID: &str = "group_id";
    pub const NAME: &str = "name";
    pub const CHANNEL: &str = "channel";
    pub const KIND: &str = "group_type";
    pub const CREATED_AT: &str = "created_at";
    pub const UPDATED_AT: &str = "updated_at";
    pub const STATE: &str = "state";
    pub const CHANGED_AT: &str = "changed_at";
    pub const SOURCE: &str = "source";
}

/// The channel a group's messages go out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Channel {
    Email,
    Webhook,
}

/// Whether a user is in a group before saying anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GroupType {
    /// Subscribed only after subscribing.
    OptIn,
    /// Subscribed until unsubscribing.
    OptOut,
}

/// A recorded state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SubscriptionState {
    Subscribed,
    Unsubscribed,
}

/// Through what a state changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChangeSource {
    Api,
    Identify,
    UnsubscribePage,
    PreferencesPage,
    Import,
}

/// A subscription group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionGroup {
    pub id: String,
    pub name: String,
    pub channel: Channel,
    #[serde(rename = "type")]
    pub group_type: GroupType,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What a create or update of a group is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInput {
    pub name: String,
    pub channel: Channel,
    pub group_type: GroupType,
}

/// A user's recorded change in one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateChange {
    pub state: SubscriptionState,
    pub at: Timestamp,
    pub source: ChangeSource,
}

/// A user's effective state in one group, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSubscription {
    pub group_id: String,
    pub name: String,
    pub channel: Channel,
    #[serde(rename = "type")]
    pub group_type: GroupType,
    /// The effective state: the recorded one, or the group type's default.
    pub state: SubscriptionState,
    /// The recorded change; `None` when the user never changed their state in this group.
    pub last_change: Option<StateChange>,
}

impl GroupType {
    /// The effective state of a user whose recorded change, if any, is `recorded`.
    pub fn effective(self, recorded: Option<SubscriptionState>) -> SubscriptionState {
        recorded.unwrap_or(match self {
            GroupType::OptIn => SubscriptionState::Unsubscribed,
            GroupType::OptOut => SubscriptionState::Subscribed,
        })
    }
}

impl GroupInput {
    /// Reads `{"name", "channel", "type"}` (every field required); an unknown field is refused.
    pub fn from_json(json: &Value) -> DomainResult<Self> {
        let object = json
            .as_object()
            .ok_or_else(|| DomainError::invalid("", "the body must be a JSON object"))?;
        if let Some(unknown) = object
            .keys()
            .find(|key| !["id", "name", "channel", "type"].contains(&key.as_str()))
        {
            return Err(DomainError::invalid(
                unknown,
                "is not a field; the fields are id, name, channel and type",
            ));
        }
        let name = match object.get("name") {
            Some(Value::String(name)) if name.trim().is_empty() => {
                return Err(DomainError::invalid("name", "must not be empty"));
            }
            Some(Value::String(name)) if name.chars().count() > MAX_NAME_LENGTH => {
                return Err(DomainError::invalid(
                    "name",
                    format!("is longer than {MAX_NAME_LENGTH} characters"),
                ));
            }
            Some(Value::String(name)) => name.clone(),
            Some(_) => return Err(DomainError::invalid("name", "must be a string")),
            None => return Err(DomainError::invalid("name", "is required")),
        };
        Ok(Self {
            name,
            channel: enum_field(object, "channel", "\"email\" or \"webhook\"")?,
            group_type: enum_field(object, "type", "\"optIn\" or \"optOut\"")?,
        })
    }
}

/// A required field holding one of an enum's names.
fn enum_field<T: for<'de> Deserialize<'de>>(
    object: &Map<String, Value>,
    field: &str,
    choices: &str,
) -> DomainResult<T> {
    let value = object
        .get(field)
        .ok_or_else(|| DomainError::invalid(field, format!("is required: {choices}")))?;
    serde_json::from_value(value.clone())
        .map_err(|_| DomainError::invalid(field, format!("must be {choices}, not {value}")))
}

/// Checks a group id from outside: 1 to 64 letters, digits, `-`, `_` or `.`.
pub fn check_id(field: &str, id: &str) -> DomainResult<()> {
    crate::templates::store::check_id(field, id)
}

/// Creates group `id`; `DomainError::Conflict` when it exists.
pub async fn create_group(
    table: &dyn Table,
    workspace_id: &str,
    id: &str,
    input: GroupInput,
    now: Timestamp,
) -> DomainResult<SubscriptionGroup> {
    check_id("id", id)?;
    let group = SubscriptionGroup {
        id: id.to_string(),
        name: input.name,
        channel: input.channel,
        group_type: input.group_type,
        created_at: now,
        updated_at: now,
    };
    match table
        .put(group_item(workspace_id, &group), Some(Condition::NotExists))
        .await
    {
        Err(PortError::ConditionFailed) => Err(DomainError::Conflict(format!(
            "a subscription group {id:?} already exists"
        ))),
        other => other.map(|()| group).map_err(Into::into),
    }
}

/// Replaces the name, channel and type of group `id`; `DomainError::NotFound` when there is none.
pub async fn update_group(
    table: &dyn Table,
    workspace_id: &str,
    id: &str,
    input: GroupInput,
    now: Timestamp,
) -> DomainResult<SubscriptionGroup> {
    let current = get_group(table, workspace_id, id)
        .await?
        .ok_or_else(|| group_not_found(id))?;
    let group = SubscriptionGroup {
        name: input.name,
        channel: input.channel,
        group_type: input.group_type,
        updated_at: now,
        ..current
    };
    match table
        .put(group_item(workspace_id, &group), Some(Condition::Exists))
        .await
    {
        Err(PortError::ConditionFailed) => Err(group_not_found(id)),
        other => other.map(|()| group).map_err(Into::into),
    }
}

/// Group `id`, if it exists.
pub async fn get_group(
    table: &dyn Table,
    workspace_id: &str,
    id: &str,
) -> DomainResult<Option<SubscriptionGroup>> {
    table
        .get(&layout::subscription_group_key(workspace_id, id))
        .await?
        .map(|item| group_from_item(&item))
        .transpose()
}

/// Every group of the workspace, by id.
pub async fn list_groups(
    table: &dyn Table,
    workspace_id: &str,
) -> DomainResult<Vec<SubscriptionGroup>> {
    let mut groups = Vec::new();
    let mut cursor = None;
    loop {
        let query = Query::new(layout::workspace_pk(workspace_id))
            .prefix(layout::SUBSCRIPTION_GROUP_SK_PREFIX)
            .limit(LIST_READ_SIZE)
            .after(cursor);
        let page = table.query(query).await?;
        for item in &page.items {
            groups.push(group_from_item(item)?);
        }
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(groups),
        }
    }
}

/// Deletes group `id`; `DomainError::NotFound` when there is none. Users' states in it are left in place
/// and ignored (they would come back with a group created under the same id).
pub async fn delete_group(table: &dyn Table, workspace_id: &str, id: &str) -> DomainResult<()> {
    table
        .delete(&layout::subscription_group_key(workspace_id, id), None)
        .await?
        .map(|_| ())
        .ok_or_else(|| group_not_found(id))
}

fn group_not_found(id: &str) -> DomainError {
    DomainError::NotFound(format!("subscription group {id:?}"))
}

/// Records `user_id`'s state in group `group_id` (which must exist), unless a later change is recorded.
/// Returns the user's effective state in the group afterwards.
pub async fn set_state(
    table: &dyn Table,
    workspace_id: &str,
    user_id: &str,
    group_id: &str,
    change: StateChange,
) -> DomainResult<UserSubscription> {
    let group = get_group(table, workspace_id, group_id)
        .await?
        .ok_or_else(|| group_not_found(group_id))?;
    let recorded = record_change(table, workspace_id, user_id, group_id, change).await?;
    Ok(user_subscription(&group, Some(recorded)))
}

/// Writes `change` unless the recorded change is later; returns the change recorded afterwards. The write
/// is conditional on the change read, so two concurrent changes end with the later one.
async fn record_change(
    table: &dyn Table,
    workspace_id: &str,
    user_id: &str,
    group_id: &str,
    change: StateChange,
) -> DomainResult<StateChange> {
    let key = layout::subscription_state_key(workspace_id, user_id, group_id);
    for _ in 0..STATE_WRITE_ATTEMPTS {
        let stored = table.get(&key).await?;
        let condition = match &stored {
            Some(item) => {
                let recorded = change_from_item(item)?;
                if recorded.at > change.at {
                    return Ok(recorded);
                }
                Condition::attr_equals(attr::CHANGED_AT, required_s(item, attr::CHANGED_AT)?)
            }
            None => Condition::NotExists,
        };
        let item = Item::new(&key)
            .with(attr::GROUP_ID, group_id)
            .with(attr::STATE, name_of(&change.state))
            .with(attr::CHANGED_AT, change.at.to_string())
            .with(attr::SOURCE, name_of(&change.source));
        match table.put(item, Some(condition)).await {
            Err(PortError::ConditionFailed) => continue,
            other => return other.map(|()| change).map_err(Into::into),
        }
    }
    Err(DomainError::Conflict(format!(
        "the subscription of {user_id:?} to {group_id:?} kept changing; retry"
    )))
}

/// Whether `user_id` receives messages of group `group_id`: the recorded state, or the group type's
/// default. `DomainError::NotFound` when the group does not exist.
pub async fn is_subscribed(
    table: &dyn Table,
    workspace_id: &str,
    user_id: &str,
    group_id: &str,
) -> DomainResult<bool> {
    let group_key = layout::subscription_group_key(workspace_id, group_id);
    let state_key = layout::subscription_state_key(workspace_id, user_id, group_id);
    let items = table
        .batch_get(&[group_key.clone(), state_key.clone()])
        .await?;
    let find = |key: &tern_ports::Key| items.iter().find(|item| item.key().as_ref() == Some(key));
    let group = find(&group_key)
        .map(group_from_item)
        .transpose()?
        .ok_or_else(|| group_not_found(group_id))?;
    let recorded = find(&state_key).map(change_from_item).transpose()?;
    Ok(group
        .group_type
        .effective(recorded.map(|change| change.state))
        == SubscriptionState::Subscribed)
}

/// `user_id`'s effective state in every group of the workspace, by group id.
pub async fn user_subscriptions(
    table: &dyn Table,
    workspace_id: &str,
    user_id: &str,
) -> DomainResult<Vec<UserSubscription>> {
    let groups = list_groups(table, workspace_id).await?;
    let changes = recorded_changes(table, workspace_id, user_id).await?;
    Ok(groups
        .iter()
        .map(|group| {
            let change = changes
                .iter()
                .find(|(group_id, _)| *group_id == group.id)
                .map(|(_, change)| *change);
            user_subscription(group, change)
        })
        .collect())
}

/// Every change recorded for the user, with its group id.
async fn recorded_changes(
    table: &dyn Table,
    workspace_id: &str,
    user_id: &str,
) -> DomainResult<Vec<(String, StateChange)>> {
    let pk = layout::profile_pk(workspace_id, crate::ingest::Subject::User(user_id));
    let mut changes = Vec::new();
    let mut cursor = None;
    loop {
        let query = Query::new(pk.clone())
            .prefix(layout::SUBSCRIPTION_STATE_SK_PREFIX)
            .limit(LIST_READ_SIZE)
            .after(cursor);
        let page = table.query(query).await?;
        for item in &page.items {
            let group_id = required_s(item, attr::GROUP_ID)?.to_string();
            changes.push((group_id, change_from_item(item)?));
        }
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(changes),
        }
    }
}

fn user_subscription(group: &SubscriptionGroup, change: Option<StateChange>) -> UserSubscription {
    UserSubscription {
        group_id: group.id.clone(),
        name: group.name.clone(),
        channel: group.channel,
        group_type: group.group_type,
        state: group
            .group_type
            .effective(change.map(|change| change.state)),
        last_change: change,
    }
}

/// Applies the `subscriptions` trait of an identify made at `at`: each `"<groupId>": true` subscribes the
/// user to that group, each `false` unsubscribes them, recorded with source `identify`. Without the trait
/// nothing happens. Entries naming a group that does not exist are skipped (a group may be created after
/// the events that name it). A trait that is not an object, or an entry that is not a boolean, is
/// `DomainError::Invalid` naming `traits.subscriptions[.<groupId>]`, and then nothing is applied.
pub async fn apply_from_traits(
    table: &dyn Table,
    workspace_id: &str,
    user_id: &str,
    traits: &Map<String, Value>,
    at: Timestamp,
) -> DomainResult<()> {
    for (group_id, state) in requested_changes(traits)? {
        let change = StateChange {
            state,
            at,
            source: ChangeSource::Identify,
        };
        match set_state(table, workspace_id, user_id, &group_id, change).await {
            Err(DomainError::NotFound(_)) => {}
            other => {
                other?;
            }
        }
    }
    Ok(())
}

/// The changes the `subscriptions` trait asks for, all checked before any is applied.
fn requested_changes(
    traits: &Map<String, Value>,
) -> DomainResult<Vec<(String, SubscriptionState)>> {
    let field = format!("traits.{SUBSCRIPTIONS_TRAIT}");
    let Some(requested) = traits.get(SUBSCRIPTIONS_TRAIT) else {
        return Ok(Vec::new());
    };
    let requested = requested.as_object().ok_or_else(|| {
        DomainError::invalid(&field, "must be an object from group id to true or false")
    })?;
    requested
        .iter()
        .map(|(group_id, value)| match value {
            Value::Bool(true) => Ok((group_id.clone(), SubscriptionState::Subscribed)),
            Value::Bool(false) => Ok((group_id.clone(), SubscriptionState::Unsubscribed)),
            other => Err(DomainError::invalid(
                &format!("{field}.{group_id}"),
                format!("must be true (subscribe) or false (unsubscribe), not {other}"),
            )),
        })
        .collect()
}

/// The serde name of a unit variant (`"optIn"`, `"unsubscribePage"`).
fn name_of<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(name)) => name,
        _ => String::new(),
    }
}

/// A unit variant from its serde name stored in attribute `name`.
fn stored_enum<T: for<'de> Deserialize<'de>>(item: &Item, name: &str) -> DomainResult<T> {
    let text = required_s(item, name)?;
    serde_json::from_value(Value::String(text.to_string()))
        .map_err(|_| corrupt(item, &format!("has an unknown {name} {text:?}")))
}

fn group_item(workspace_id: &str, group: &SubscriptionGroup) -> Item {
    Item::new(&layout::subscription_group_key(workspace_id, &group.id))
        .with(attr::GROUP_ID, group.id.as_str())
        .with(attr::NAME, group.name.as_str())
        .with(attr::CHANNEL, name_of(&group.channel))
        .with(attr::KIND, name_of(&group.group_type))
        .with(attr::CREATED_AT, group.created_at.to_string())
        .with(attr::UPDATED_AT, group.updated_at.to_string())
}

fn group_from_item(item: &Item) -> DomainResult<SubscriptionGroup> {
    Ok(SubscriptionGroup {
        id: required_s(item, attr::GROUP_ID)?.to_string(),
        name: required_s(item, attr::NAME)?.to_string(),
        channel: stored_enum(item, attr::CHANNEL)?,
        group_type: stored_enum(item, attr::KIND)?,
        created_at: required_time(item, attr::CREATED_AT)?,
        updated_at: required_time(item, attr::UPDATED_AT)?,
    })
}

fn change_from_item(item: &Item) -> DomainResult<StateChange> {
    Ok(StateChange {
        state: stored_enum(item, attr::STATE)?,
        at: required_time(item, attr::CHANGED_AT)?,
        source: stored_enum(item, attr::SOURCE)?,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use jiff::SignedDuration;
    use serde_json::json;
    use tern_embedded::Db;
    use tern_embedded::table::SqliteTable;

    use super::*;

    fn table() -> Arc<dyn Table> {
        Arc::new(SqliteTable::new(Db::in_memory().unwrap()).unwrap())
    }

    fn start() -> Timestamp {
        "2026-03-01T09:00:00Z".parse().unwrap()
    }

    async fn group(table: &dyn Table, id: &str, group_type: GroupType) {
        let input = GroupInput {
            name: format!("Group {id}"),
            channel: Channel::Email,
            group_type,
        };
        create_group(table, "ws", id, input, start()).await.unwrap();
    }

    fn change(state: SubscriptionState, seconds: i64) -> StateChange {
        StateChange {
            state,
            at: start() + SignedDuration::from_secs(seconds),
            source: ChangeSource::Api,
        }
    }

    #[tokio::test]
    async fn opt_out_groups_count_users_in_until_they_leave_and_opt_in_ones_after_they_join() {
        let table = table();
        let table = table.as_ref();
        group(table, "news", GroupType::OptOut).await;
        group(table, "beta", GroupType::OptIn).await;
        assert!(is_subscribed(table, "ws", "u1", "news").await.unwrap());
        assert!(!is_subscribed(table, "ws", "u1", "beta").await.unwrap());

        set_state(
            table,
            "ws",
            "u1",
            "news",
            change(SubscriptionState::Unsubscribed, 1),
        )
        .await
        .unwrap();
        set_state(
            table,
            "ws",
            "u1",
            "beta",
            change(SubscriptionState::Subscribed, 1),
        )
        .await
        .unwrap();
        assert!(!is_subscribed(table, "ws", "u1", "news").await.unwrap());
        assert!(is_subscribed(table, "ws", "u1", "beta").await.unwrap());
        // Another user keeps the defaults.
        assert!(is_subscribed(table, "ws", "u2", "news").await.unwrap());

        let states = user_subscriptions(table, "ws", "u1").await.unwrap();
        let ids: Vec<(&str, SubscriptionState)> = states
            .iter()
            .map(|s| (s.group_id.as_str(), s.state))
            .collect();
        assert_eq!(
            ids,
            [
                ("beta", SubscriptionState::Subscribed),
                ("news", SubscriptionState::Unsubscribed)
            ]
        );
    }

    #[tokio::test]
    async fn an_older_change_does_not_replace_a_newer_one() {
        let table = table();
        let table = table.as_ref();
        group(table, "news", GroupType::OptOut).await;
        set_state(
            table,
            "ws",
            "u1",
            "news",
            change(SubscriptionState::Unsubscribed, 10),
        )
        .await
        .unwrap();
        let after = set_state(
            table,
            "ws",
            "u1",
            "news",
            change(SubscriptionState::Subscribed, 5),
        )
        .await
        .unwrap();
        assert_eq!(after.state, SubscriptionState::Unsubscribed);
        assert!(!is_subscribed(table, "ws", "u1", "news").await.unwrap());
    }

    #[tokio::test]
    async fn an_identify_trait_subscribes_and_unsubscribes_and_skips_unknown_groups() {
        let table = table();
        let table = table.as_ref();
        group(table, "news", GroupType::OptOut).await;
        group(table, "beta", GroupType::OptIn).await;
        let traits = json!({"subscriptions": {"news": false, "beta": true, "gone": true}});
        apply_from_traits(table, "ws", "u1", traits.as_object().unwrap(), start())
            .await
            .unwrap();
        assert!(!is_subscribed(table, "ws", "u1", "news").await.unwrap());
        assert!(is_subscribed(table, "ws", "u1", "beta").await.unwrap());
        let states = user_subscriptions(table, "ws", "u1").await.unwrap();
        assert!(states.iter().all(|s| {
            s.last_change
                .is_some_and(|c| c.source == ChangeSource::Identify)
        }));

        let bad = json!({"subscriptions": {"news": true, "beta": "yes"}});
        let error = apply_from_traits(table, "ws", "u1", bad.as_object().unwrap(), start())
            .await
            .unwrap_err();
        assert!(
            matches!(&error, DomainError::Invalid { field, .. } if field == "traits.subscriptions.beta"),
            "{error:?}"
        );
        assert!(
            !is_subscribed(table, "ws", "u1", "news").await.unwrap(),
            "nothing is applied"
        );
        let none = json!({"plan": "pro"});
        apply_from_traits(table, "ws", "u1", none.as_object().unwrap(), start())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn groups_are_created_updated_listed_and_deleted() {
        let table = table();
        let table = table.as_ref();
        group(table, "news", GroupType::OptOut).await;
        let again = create_group(
            table,
            "ws",
            "news",
            GroupInput::from_json(&json!({"name": "N", "channel": "email", "type": "optIn"}))
                .unwrap(),
            start(),
        )
        .await;
        assert!(matches!(again, Err(DomainError::Conflict(_))));
        let input =
            GroupInput::from_json(&json!({"name": "Hooks", "channel": "webhook", "type": "optIn"}))
                .unwrap();
        let updated = update_group(table, "ws", "news", input, start())
            .await
            .unwrap();
        assert_eq!(updated.channel, Channel::Webhook);
        assert_eq!(list_groups(table, "ws").await.unwrap(), vec![updated]);
        delete_group(table, "ws", "news").await.unwrap();
        assert!(list_groups(table, "ws").await.unwrap().is_empty());
        assert!(matches!(
            is_subscribed(table, "ws", "u1", "news").await,
            Err(DomainError::NotFound(_))
        ));
    }

    #[test]
    fn bad_group_input_names_the_field() {
        let cases = [
            (json!({"channel": "email", "type": "optIn"}), "name"),
            (
                json!({"name": "N", "channel": "sms", "type": "optIn"}),
                "channel",
            ),
            (json!({"name": "N", "channel": "email"}), "type"),
            (
                json!({"name": "N", "channel": "email", "type": "optIn", "x": 1}),
                "x",
            ),
        ];
        for (json, expected) in cases {
            let error = GroupInput::from_json(&json).unwrap_err();
            assert!(
                matches!(&error, DomainError::Invalid { field, .. } if field == expected),
                "{json}: {error:?}"
            );
        }
    }
}
