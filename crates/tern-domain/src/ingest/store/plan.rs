//! What one batch of claimed events changes, worked out in memory before anything is written: whose profile
//! each event belongs to, one merged change per profile and per group, and the identities to link.
//!
//! Merging here is what keeps a batch cheap: a hundred events from twenty users become twenty profile
//! updates, not a hundred.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::ingest::{Event, EventKind, Subject};
use crate::layout;

/// The `context` fields a profile keeps from the latest event that carries any of them.
pub(super) const KEPT_CONTEXT_FIELDS: [&str; 4] = ["ip", "userAgent", "locale", "timezone"];
/// The trait that, like `context.timezone`, sets a profile's timezone.
const TIMEZONE_TRAIT: &str = "timezone";

/// The changes of one batch.
pub(super) struct Plan<'a> {
    /// Each event's profile, in event order.
    pub subjects: Vec<Subject<'a>>,
    /// One merged change per profile, by the profile's partition key.
    pub profiles: BTreeMap<String, ProfileChanges<'a>>,
    /// Identities to link, in arrival order, one per linked id (the latest call wins).
    pub links: Vec<NewLink<'a>>,
    /// One merged change per group, by group id.
    pub groups: BTreeMap<&'a str, GroupChanges<'a>>,
}

/// Everything a batch changes on one profile.
pub(super) struct ProfileChanges<'a> {
    pub subject: Subject<'a>,
    /// The final state of each trait the batch touched: `None` when an explicit null removed it.
    pub traits: BTreeMap<&'a str, Option<&'a Value>>,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// The kept fields of the latest event's `context` that had any.
    pub context: Option<Map<String, Value>>,
    /// The latest valid IANA timezone the batch reported.
    pub timezone: Option<String>,
    /// Ids linked to this user by the batch, with when they were first linked.
    pub linked_ids: BTreeMap<&'a str, Timestamp>,
}

/// An identify or alias that ties `linked_id` (an anonymousId or previousId) to `user_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct NewLink<'a> {
    pub linked_id: &'a str,
    pub user_id: &'a str,
    pub at: Timestamp,
    /// An alias's previous id may be a user id as well as an anonymous one.
    pub from_alias: bool,
}

/// Everything a batch changes on one group.
pub(super) struct GroupChanges<'a> {
    pub traits: BTreeMap<&'a str, Option<&'a Value>>,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// Members by profile partition key, with the latest time each was seen in the group.
    pub members: BTreeMap<String, (Subject<'a>, Timestamp)>,
}

impl<'a> Plan<'a> {
    /// Plans `events` (in arrival order). `stored_links` maps the anonymous ids linked before this batch to
    /// their user.
    pub fn build(
        workspace_id: &str,
        events: &'a [Event],
        stored_links: &'a HashMap<String, String>,
    ) -> Self {
        let mut plan = Plan {
            subjects: Vec::with_capacity(events.len()),
            profiles: BTreeMap::new(),
            links: Vec::new(),
            groups: BTreeMap::new(),
        };
        let mut batch_links: HashMap<&'a str, &'a str> = HashMap::new();
        let mut timezones = TimezoneCache::default();
        for event in events {
            let subject = resolve(event, &batch_links, stored_links);
            plan.subjects.push(subject);
            let pk = layout::profile_pk(workspace_id, subject);
            plan.profiles
                .entry(pk.clone())
                .or_insert_with(|| ProfileChanges::new(subject, event.timestamp))
                .absorb(event, &mut timezones);
            if let Some(link) = new_link(event) {
                batch_links.insert(link.linked_id, link.user_id);
                plan.add_link(link);
                if let Some(profile) = plan.profiles.get_mut(&pk) {
                    profile.linked_ids.entry(link.linked_id).or_insert(link.at);
                }
            }
            if let (EventKind::Group, Some(group_id)) = (event.kind, event.group_id.as_deref()) {
                plan.groups
                    .entry(group_id)
                    .or_insert_with(|| GroupChanges::new(event.timestamp))
                    .absorb(event, pk, subject);
            }
        }
        plan
    }

    /// Records a link; a later link of the same id replaces an earlier one, as the later call is newer.
    fn add_link(&mut self, link: NewLink<'a>) {
        self.links.retain(|known| known.linked_id != link.linked_id);
        self.links.push(link);
    }
}

/// Whose profile an event belongs to: its user, else the user its anonymous id was linked to (earlier in
/// this batch first, then before it), else the anonymous visitor.
fn resolve<'a>(
    event: &'a Event,
    batch_links: &HashMap<&'a str, &'a str>,
    stored_links: &'a HashMap<String, String>,
) -> Subject<'a> {
    match (&event.user_id, &event.anonymous_id) {
        (Some(user_id), _) => Subject::User(user_id),
        (None, Some(anonymous_id)) => batch_links
            .get(anonymous_id.as_str())
            .copied()
            .or_else(|| stored_links.get(anonymous_id).map(String::as_str))
            .map_or(Subject::Anonymous(anonymous_id), Subject::User),
        (None, None) => event.subject(),
    }
}

/// The link an identify (anonymousId → userId) or alias (previousId → userId) call asks for.
fn new_link(event: &Event) -> Option<NewLink<'_>> {
    let user_id = event.user_id.as_deref()?;
    let (linked_id, from_alias) = match event.kind {
        EventKind::Identify => (event.anonymous_id.as_deref()?, false),
        EventKind::Alias => (
            event
                .previous_id
                .as_deref()
                .or(event.anonymous_id.as_deref())?,
            true,
        ),
        _ => return None,
    };
    let links_nothing = linked_id.is_empty() || (from_alias && linked_id == user_id);
    (!links_nothing).then_some(NewLink {
        linked_id,
        user_id,
        at: event.timestamp,
        from_alias,
    })
}

impl<'a> ProfileChanges<'a> {
    fn new(subject: Subject<'a>, at: Timestamp) -> Self {
        Self {
            subject,
            traits: BTreeMap::new(),
            first_seen: at,
            last_seen: at,
            context: None,
            timezone: None,
            linked_ids: BTreeMap::new(),
        }
    }

    fn absorb(&mut self, event: &'a Event, timezones: &mut TimezoneCache) {
        self.first_seen = self.first_seen.min(event.timestamp);
        self.last_seen = self.last_seen.max(event.timestamp);
        if event.kind == EventKind::Identify {
            merge_traits(&mut self.traits, &event.traits);
        }
        let kept = kept_context(&event.context);
        if !kept.is_empty() {
            self.context = Some(kept);
        }
        // A trait is an explicit statement about the user, so it outranks the client's report in context.
        let trait_timezone = match event.kind {
            EventKind::Identify => event.traits.get(TIMEZONE_TRAIT).and_then(Value::as_str),
            _ => None,
        };
        let reported = trait_timezone
            .and_then(|name| timezones.valid(name))
            .or_else(|| {
                event
                    .context_timezone()
                    .and_then(|name| timezones.valid(name))
            });
        if let Some(timezone) = reported {
            self.timezone = Some(timezone);
        }
    }

    /// Trait names the batch set or removed.
    pub fn touches_trait(&self, name: &str) -> bool {
        self.traits.contains_key(name)
    }
}

impl<'a> GroupChanges<'a> {
    fn new(at: Timestamp) -> Self {
        Self {
            traits: BTreeMap::new(),
            first_seen: at,
            last_seen: at,
            members: BTreeMap::new(),
        }
    }

    fn absorb(&mut self, event: &'a Event, member_pk: String, member: Subject<'a>) {
        self.first_seen = self.first_seen.min(event.timestamp);
        self.last_seen = self.last_seen.max(event.timestamp);
        merge_traits(&mut self.traits, &event.traits);
        let seen = self
            .members
            .entry(member_pk)
            .or_insert((member, event.timestamp));
        seen.1 = seen.1.max(event.timestamp);
    }
}

/// Segment's identify rule: top-level keys, the later value wins, an explicit null removes the trait.
fn merge_traits<'a>(
    merged: &mut BTreeMap<&'a str, Option<&'a Value>>,
    traits: &'a Map<String, Value>,
) {
    for (name, value) in traits {
        merged.insert(name.as_str(), (!value.is_null()).then_some(value));
    }
}

/// The fields of `context` a profile keeps.
pub(super) fn kept_context(context: &Map<String, Value>) -> Map<String, Value> {
    KEPT_CONTEXT_FIELDS
        .iter()
        .filter_map(|field| {
            context
                .get(*field)
                .filter(|value| !value.is_null())
                .map(|value| (field.to_string(), value.clone()))
        })
        .collect()
}

/// The canonical IANA name of `name`, when it is one; `None` for anything else (an offset, a typo,
/// `Etc/Unknown`), which the profile then ignores.
pub(crate) fn valid_timezone(name: &str) -> Option<String> {
    let zone = jiff::tz::TimeZone::get(name).ok()?;
    zone.iana_name().map(str::to_string)
}

/// Timezone checks of one batch, remembered: most events of a batch report the same zone.
#[derive(Default)]
struct TimezoneCache {
    checked: HashMap<String, Option<String>>,
}

impl TimezoneCache {
    fn valid(&mut self, name: &str) -> Option<String> {
        if let Some(known) = self.checked.get(name) {
            return known.clone();
        }
        let checked = valid_timezone(name);
        self.checked.insert(name.to_string(), checked.clone());
        checked
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(kind: EventKind, message_id: &str, body: Value) -> Event {
        let mut value = json!({
            "messageId": message_id,
            "type": kind.as_str(),
            "timestamp": "2026-03-01T10:00:00Z",
            "receivedAt": "2026-03-01T10:00:00Z",
        });
        value
            .as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn traits_merge_in_arrival_order_and_null_removes() {
        let events = vec![
            event(
                EventKind::Identify,
                "m1",
                json!({"userId": "u1", "traits": {"plan": "free", "name": "Ada", "age": 30}}),
            ),
            event(
                EventKind::Identify,
                "m2",
                json!({"userId": "u1", "traits": {"plan": "pro", "age": null}}),
            ),
        ];
        let links = HashMap::new();
        let plan = Plan::build("ws", &events, &links);
        let profile = &plan.profiles[&layout::profile_pk("ws", Subject::User("u1"))];
        assert_eq!(profile.traits["plan"], Some(&json!("pro")));
        assert_eq!(profile.traits["name"], Some(&json!("Ada")));
        assert_eq!(profile.traits["age"], None);
        assert!(profile.touches_trait("age"));
    }

    #[test]
    fn anonymous_events_after_an_identify_in_the_batch_resolve_to_the_user() {
        let events = vec![
            event(
                EventKind::Track,
                "m1",
                json!({"anonymousId": "a1", "event": "Viewed"}),
            ),
            event(
                EventKind::Identify,
                "m2",
                json!({"userId": "u1", "anonymousId": "a1"}),
            ),
            event(
                EventKind::Track,
                "m3",
                json!({"anonymousId": "a1", "event": "Bought"}),
            ),
            event(
                EventKind::Track,
                "m4",
                json!({"anonymousId": "a2", "event": "Viewed"}),
            ),
        ];
        let stored = HashMap::from([("a2".to_string(), "u2".to_string())]);
        let plan = Plan::build("ws", &events, &stored);
        assert_eq!(
            plan.subjects,
            vec![
                Subject::Anonymous("a1"),
                Subject::User("u1"),
                Subject::User("u1"),
                Subject::User("u2")
            ]
        );
        assert_eq!(plan.links.len(), 1);
        assert_eq!(plan.links[0].linked_id, "a1");
        assert_eq!(plan.links[0].user_id, "u1");
    }

    #[test]
    fn alias_links_its_previous_id_and_not_itself() {
        let events = vec![
            event(
                EventKind::Alias,
                "m1",
                json!({"userId": "u1", "previousId": "old"}),
            ),
            event(
                EventKind::Alias,
                "m2",
                json!({"userId": "u2", "previousId": "u2"}),
            ),
        ];
        let links = HashMap::new();
        let plan = Plan::build("ws", &events, &links);
        assert_eq!(plan.links.len(), 1);
        assert_eq!(
            (plan.links[0].linked_id, plan.links[0].from_alias),
            ("old", true)
        );
    }

    #[test]
    fn timezone_comes_from_a_valid_trait_or_context_and_invalid_ones_are_ignored() {
        let events = vec![
            event(
                EventKind::Track,
                "m1",
                json!({"userId": "u1", "context": {"timezone": "Europe/Paris", "ip": "1.2.3.4"}}),
            ),
            event(
                EventKind::Track,
                "m2",
                json!({"userId": "u1", "context": {"timezone": "Mars/Olympus"}}),
            ),
            event(
                EventKind::Identify,
                "m3",
                json!({"userId": "u2", "traits": {"timezone": "Asia/Kolkata"}, "context": {"timezone": "UTC"}}),
            ),
        ];
        let links = HashMap::new();
        let plan = Plan::build("ws", &events, &links);
        let u1 = &plan.profiles[&layout::profile_pk("ws", Subject::User("u1"))];
        assert_eq!(u1.timezone.as_deref(), Some("Europe/Paris"));
        assert_eq!(
            u1.context.as_ref().unwrap(),
            json!({"timezone": "Mars/Olympus"}).as_object().unwrap()
        );
        let u2 = &plan.profiles[&layout::profile_pk("ws", Subject::User("u2"))];
        assert_eq!(u2.timezone.as_deref(), Some("Asia/Kolkata"));
        assert_eq!(valid_timezone("+05:30"), None);
        assert_eq!(valid_timezone("Etc/Unknown"), None);
        assert_eq!(valid_timezone(""), None);
    }
}
