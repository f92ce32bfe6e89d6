//! Membership evaluation: whether a user meets a condition now, and the earliest later moment at which the
//! answer could change with no new input (`next_check`), which feeds the next-expiry index.
//!
//! Comparison rules (also in `docs/segments.md`):
//! - A number in a condition matches a number, or a string that reads as a finite number (`"42"`, `"4.2e1"`);
//!   `gt`/`gte`/`lt`/`lte` compare as 64-bit floats. A string in a condition matches only the same string
//!   (case-sensitive). Booleans and null match only themselves.
//! - A trait or property set to null does not exist; `notEquals` is true when the value is missing.
//! - Dates are strings: RFC 3339 date-times, date-times without offset (UTC), or dates (midnight UTC).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use jiff::Timestamp;
use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};

use super::definition::{Comparison, Condition, CountRule, DateBound, Duration, PropertyFilter};
use super::state::UserState;
use super::validate::parse_instant;

/// The result of evaluating a condition for one user at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evaluation {
    pub member: bool,
    /// The earliest later moment at which `member` could change with no new input (a window edge or a
    /// trait date passing); `None` when only new input can change it. Evaluating again at or after this
    /// moment gives the new answer.
    pub next_check: Option<Timestamp>,
}

/// Other segments' memberships of the user, for `segment` references.
pub trait Memberships {
    fn is_member(&self, segment_id: &str) -> bool;
}

impl Memberships for HashSet<String> {
    fn is_member(&self, segment_id: &str) -> bool {
        self.contains(segment_id)
    }
}

impl Memberships for BTreeSet<String> {
    fn is_member(&self, segment_id: &str) -> bool {
        self.contains(segment_id)
    }
}

impl Memberships for HashMap<String, bool> {
    fn is_member(&self, segment_id: &str) -> bool {
        self.get(segment_id).copied().unwrap_or(false)
    }
}

impl Memberships for BTreeMap<String, bool> {
    fn is_member(&self, segment_id: &str) -> bool {
        self.get(segment_id).copied().unwrap_or(false)
    }
}

/// No memberships at all.
impl Memberships for () {
    fn is_member(&self, _segment_id: &str) -> bool {
        false
    }
}

/// What evaluation knows about one user.
#[derive(Clone, Copy)]
pub struct UserFacts<'a> {
    pub user_id: &'a str,
    pub traits: &'a Map<String, Value>,
    pub state: &'a UserState,
    pub memberships: &'a dyn Memberships,
}

/// Evaluates `condition` (the condition of segment `segment_id`, whose id seeds an unseeded random bucket)
/// for one user at `now`.
pub fn evaluate(
    segment_id: &str,
    condition: &Condition,
    facts: &UserFacts<'_>,
    now: Timestamp,
) -> Evaluation {
    let (member, next_check) = Evaluator {
        segment_id,
        facts,
        now,
    }
    .condition(condition);
    Evaluation { member, next_check }
}

/// The bucket of a user for a seed, in hundredths of a percent (0..10 000): the first 8 bytes of
/// SHA-256(seed, 0x1F, user id) read big-endian, modulo 10 000. The same on every platform and release.
pub fn random_bucket_of(seed: &str, user_id: &str) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(seed.as_bytes());
    hasher.update([0x1f]);
    hasher.update(user_id.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % 10_000
}

/// A result and the moment it could next change on its own.
type Outcome = (bool, Option<Timestamp>);

fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

struct Evaluator<'e, 'f> {
    segment_id: &'e str,
    facts: &'e UserFacts<'f>,
    now: Timestamp,
}

impl Evaluator<'_, '_> {
    fn condition(&self, condition: &Condition) -> Outcome {
        let state = self.facts.state;
        match condition {
            Condition::All(children) => all(children.iter().map(|child| self.condition(child))),
            Condition::Any(children) => any(children.iter().map(|child| self.condition(child))),
            Condition::Not(child) => {
                let (member, next) = self.condition(child);
                (!member, next)
            }
            Condition::Everyone => (true, None),
            Condition::Trait(filter) => compare(
                &filter.comparison,
                filter.path.lookup(self.facts.traits),
                self.now,
            ),
            Condition::Performed(performed) | Condition::NotPerformed(performed) => self.counted(
                state.counter(performed.key),
                performed.count,
                performed.within,
            ),
            Condition::Engagement(engagement) => self.counted(
                state.counter(engagement.key),
                engagement.count,
                engagement.within,
            ),
            Condition::LastEvent(last) => match state.last_event(&last.key) {
                None => (false, None),
                Some(occurrence) => all(last.filters.iter().map(|filter| {
                    let actual = occurrence.properties.get(filter.path.as_str());
                    compare(&filter.comparison, actual, self.now)
                })),
            },
            Condition::Subscription(subscription) => (
                state.subscription(&subscription.group) == Some(subscription.state),
                None,
            ),
            Condition::List(list) => (state.in_list(list), None),
            Condition::RandomBucket(bucket) => {
                let seed = bucket.seed.as_deref().unwrap_or(self.segment_id);
                (
                    random_bucket_of(seed, self.facts.user_id) < bucket.basis_points,
                    None,
                )
            }
            Condition::Segment(segment) => (self.facts.memberships.is_member(segment), None),
        }
    }

    fn counted(
        &self,
        counter: Option<&super::state::Counter>,
        rule: CountRule,
        within: Option<Duration>,
    ) -> Outcome {
        let Some(counter) = counter else {
            return (rule.accepts(0), None);
        };
        match within {
            None => (rule.accepts(counter.total), None),
            Some(window) => {
                counter.window_outcome(window.seconds(), self.now, |count| rule.accepts(count))
            }
        }
    }
}

/// True when every outcome is. A false result cannot change before the false child changes, so its
/// `next_check` is enough (and the rest need not be evaluated); a true one changes when any child does.
fn all(outcomes: impl Iterator<Item = Outcome>) -> Outcome {
    let mut next = None;
    for (member, child_next) in outcomes {
        if !member {
            return (false, child_next);
        }
        next = earliest(next, child_next);
    }
    (true, next)
}

/// True when any outcome is; the mirror of [`all`].
fn any(outcomes: impl Iterator<Item = Outcome>) -> Outcome {
    let mut next = None;
    for (member, child_next) in outcomes {
        if member {
            return (true, child_next);
        }
        next = earliest(next, child_next);
    }
    (false, next)
}

/// Whether an event's properties pass a `where` filter, when the event is recorded. Filters on counted
/// events never depend on now (validation rejects relative dates there), so the moment does not matter.
pub(crate) fn filter_matches_at_record(
    filter: &PropertyFilter,
    properties: &Map<String, Value>,
) -> bool {
    compare(
        &filter.comparison,
        filter.path.lookup(properties),
        Timestamp::UNIX_EPOCH,
    )
    .0
}

/// A value as a number: a JSON number, or a string that reads as a finite number.
fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        _ => None,
    }
}

fn number(number: &Number) -> f64 {
    number.as_f64().unwrap_or(f64::NAN)
}

/// Whether `actual` matches the condition's `expected` scalar (see the module's comparison rules).
fn matches_value(expected: &Value, actual: &Value) -> bool {
    match expected {
        Value::Number(expected) => as_number(actual) == expected.as_f64(),
        other => other == actual,
    }
}

fn as_instant(value: &Value) -> Option<Timestamp> {
    value.as_str().and_then(parse_instant)
}

/// `instant` moved by `seconds`, or `None` past the representable range.
fn shifted(instant: Timestamp, seconds: i64) -> Option<Timestamp> {
    instant
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .ok()
}

/// Applies one comparison to a trait or property value (missing: `None`).
pub(crate) fn compare(comparison: &Comparison, actual: Option<&Value>, now: Timestamp) -> Outcome {
    let actual = actual.filter(|value| !value.is_null());
    let timeless = |member: bool| (member, None);
    match comparison {
        Comparison::Exists => timeless(actual.is_some()),
        Comparison::NotExists => timeless(actual.is_none()),
        Comparison::Equals(expected) => {
            timeless(actual.is_some_and(|a| matches_value(expected, a)))
        }
        Comparison::NotEquals(expected) => {
            timeless(!actual.is_some_and(|a| matches_value(expected, a)))
        }
        Comparison::Gt(bound) => timeless(
            actual
                .and_then(as_number)
                .is_some_and(|a| a > number(bound)),
        ),
        Comparison::Gte(bound) => timeless(
            actual
                .and_then(as_number)
                .is_some_and(|a| a >= number(bound)),
        ),
        Comparison::Lt(bound) => timeless(
            actual
                .and_then(as_number)
                .is_some_and(|a| a < number(bound)),
        ),
        Comparison::Lte(bound) => timeless(
            actual
                .and_then(as_number)
                .is_some_and(|a| a <= number(bound)),
        ),
        Comparison::Contains(needle) => timeless(actual.is_some_and(|a| {
            match a {
                Value::String(text) => text.contains(needle.as_str()),
                Value::Array(items) => items
                    .iter()
                    .any(|item| item.as_str() == Some(needle.as_str())),
                _ => false,
            }
        })),
        Comparison::StartsWith(prefix) => timeless(
            actual
                .and_then(Value::as_str)
                .is_some_and(|text| text.starts_with(prefix.as_str())),
        ),
        Comparison::In(values) => timeless(
            actual.is_some_and(|a| values.iter().any(|expected| matches_value(expected, a))),
        ),
        Comparison::Before(bound) => match actual.and_then(as_instant) {
            None => (false, None),
            Some(date) => before(date, bound, now),
        },
        Comparison::After(bound) => match actual.and_then(as_instant) {
            None => (false, None),
            Some(date) => after(date, bound, now),
        },
        Comparison::WithinLast(duration) => match actual.and_then(as_instant) {
            None => (false, None),
            Some(date) => within_last(date, *duration, now),
        },
    }
}

/// `before 2026-01-01`: strictly earlier. `before 30d`: at least 30 days ago (`date <= now - 30d`), which
/// becomes true at `date + 30d`.
fn before(date: Timestamp, bound: &DateBound, now: Timestamp) -> Outcome {
    match bound {
        DateBound::At { instant, .. } => (date < *instant, None),
        DateBound::Ago(duration) => {
            let turns_true = shifted(date, duration.seconds());
            match turns_true {
                Some(moment) if now < moment => (false, Some(moment)),
                Some(_) => (true, None),
                None => (false, None),
            }
        }
    }
}

/// `after 2026-01-01`: strictly later. `after 30d`: less than 30 days ago (`date > now - 30d`), which
/// becomes false at `date + 30d`.
fn after(date: Timestamp, bound: &DateBound, now: Timestamp) -> Outcome {
    match bound {
        DateBound::At { instant, .. } => (date > *instant, None),
        DateBound::Ago(duration) => match shifted(date, duration.seconds()) {
            Some(moment) if now < moment => (true, Some(moment)),
            Some(_) => (false, None),
            None => (true, None),
        },
    }
}

/// `withinLast 7d`: `now - 7d < date <= now`. A future date enters when it arrives.
fn within_last(date: Timestamp, duration: Duration, now: Timestamp) -> Outcome {
    if date > now {
        return (false, Some(date));
    }
    match shifted(date, duration.seconds()) {
        Some(leaves) if now < leaves => (true, Some(leaves)),
        Some(_) => (false, None),
        None => (true, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segments::{
        EngagementFacts, EngagementKind, EventFacts, EventType, Requirements, SegmentDefinition,
        SubscriptionState,
    };
    use jiff::SignedDuration;
    use serde_json::json;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("test timestamp")
    }

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    /// A user, the segment under test, and the state kept for it.
    struct Fixture {
        condition: Condition,
        requirements: Requirements,
        traits: Map<String, Value>,
        state: UserState,
        memberships: BTreeSet<String>,
        user_id: String,
    }

    impl Fixture {
        fn new(condition: Value) -> Fixture {
            let definition =
                SegmentDefinition::from_value(&json!({"name": "test", "condition": condition}))
                    .unwrap_or_else(|errors| panic!("invalid test definition: {errors:?}"));
            let mut requirements = Requirements::default();
            requirements.add(&definition.condition);
            Fixture {
                condition: definition.condition,
                requirements,
                traits: Map::new(),
                state: UserState::default(),
                memberships: BTreeSet::new(),
                user_id: "user-1".into(),
            }
        }

        fn with_traits(mut self, traits: Value) -> Fixture {
            self.traits = object(traits);
            self
        }

        fn track(&mut self, name: &str, properties: Value, when: &str) {
            self.event(EventType::Track, name, properties, when);
        }

        fn event(&mut self, kind: EventType, name: &str, properties: Value, when: &str) {
            let properties = object(properties);
            let facts = EventFacts {
                kind,
                name,
                properties: &properties,
                at: at(when),
            };
            self.state
                .record_event(&self.requirements, &facts, at(when));
        }

        fn evaluate(&self, now: &str) -> Evaluation {
            let facts = UserFacts {
                user_id: &self.user_id,
                traits: &self.traits,
                state: &self.state,
                memberships: &self.memberships,
            };
            evaluate("segment-1", &self.condition, &facts, at(now))
        }

        fn member(&self, now: &str) -> bool {
            self.evaluate(now).member
        }
    }

    const NOW: &str = "2026-03-10T12:00:00Z";

    fn trait_case(op: &str, value: Value, traits: Value) -> bool {
        let condition = if value.is_null() {
            json!({"trait": "field", "op": op})
        } else {
            json!({"trait": "field", "op": op, "value": value})
        };
        Fixture::new(condition).with_traits(traits).member(NOW)
    }

    #[test]
    fn trait_comparisons_match_and_miss() {
        let cases: Vec<(&str, Value, Value, bool)> = vec![
            ("equals", json!("pro"), json!({"field": "pro"}), true),
            ("equals", json!("pro"), json!({"field": "Pro"}), false),
            ("equals", json!(42), json!({"field": "42"}), true),
            ("equals", json!(42), json!({"field": 42.0}), true),
            ("equals", json!("42"), json!({"field": 42}), false),
            ("equals", json!(true), json!({"field": true}), true),
            ("notEquals", json!("pro"), json!({"field": "free"}), true),
            ("notEquals", json!("pro"), json!({}), true),
            ("notEquals", json!("pro"), json!({"field": "pro"}), false),
            ("exists", Value::Null, json!({"field": 0}), true),
            ("exists", Value::Null, json!({"field": null}), false),
            ("notExists", Value::Null, json!({}), true),
            ("notExists", Value::Null, json!({"field": "x"}), false),
            ("gt", json!(10), json!({"field": 11}), true),
            ("gt", json!(10), json!({"field": 10}), false),
            ("gte", json!(10), json!({"field": "10"}), true),
            ("gte", json!(10), json!({"field": "ten"}), false),
            ("lt", json!(10), json!({"field": 9.5}), true),
            ("lt", json!(10), json!({}), false),
            ("lte", json!(10), json!({"field": 10}), true),
            ("lte", json!(10), json!({"field": 10.01}), false),
            (
                "contains",
                json!("@acme"),
                json!({"field": "jo@acme.com"}),
                true,
            ),
            (
                "contains",
                json!("beta"),
                json!({"field": ["alpha", "beta"]}),
                true,
            ),
            (
                "contains",
                json!("gamma"),
                json!({"field": ["alpha", "beta"]}),
                false,
            ),
            ("startsWith", json!("+44"), json!({"field": "+44 20"}), true),
            ("startsWith", json!("+44"), json!({"field": "+33 1"}), false),
            ("in", json!(["de", "fr", 7]), json!({"field": "fr"}), true),
            ("in", json!(["de", "fr", 7]), json!({"field": "7"}), true),
            ("in", json!(["de", "fr"]), json!({"field": "it"}), false),
            (
                "before",
                json!("2026-01-01"),
                json!({"field": "2025-12-31T23:59:59Z"}),
                true,
            ),
            (
                "before",
                json!("2026-01-01"),
                json!({"field": "2026-01-01"}),
                false,
            ),
            (
                "after",
                json!("2026-01-01T00:00:00Z"),
                json!({"field": "2026-02-01"}),
                true,
            ),
            (
                "after",
                json!("2026-01-01T00:00:00Z"),
                json!({"field": "not a date"}),
                false,
            ),
            (
                "before",
                json!("30d"),
                json!({"field": "2026-02-01T12:00:00Z"}),
                true,
            ),
            (
                "before",
                json!("30d"),
                json!({"field": "2026-03-01T12:00:00Z"}),
                false,
            ),
            (
                "after",
                json!("30d"),
                json!({"field": "2026-03-01T12:00:00Z"}),
                true,
            ),
            (
                "after",
                json!("30d"),
                json!({"field": "2026-02-01T12:00:00Z"}),
                false,
            ),
            (
                "withinLast",
                json!("7d"),
                json!({"field": "2026-03-05T00:00:00Z"}),
                true,
            ),
            (
                "withinLast",
                json!("7d"),
                json!({"field": "2026-03-01T00:00:00Z"}),
                false,
            ),
            (
                "withinLast",
                json!("7d"),
                json!({"field": "2026-03-11T00:00:00Z"}),
                false,
            ),
        ];
        for (op, value, traits, expected) in cases {
            assert_eq!(
                trait_case(op, value.clone(), traits.clone()),
                expected,
                "{op} {value} on {traits}"
            );
        }
    }

    #[test]
    fn dotted_trait_paths_read_nested_objects_and_dotted_keys() {
        let nested =
            Fixture::new(json!({"trait": "address.city", "op": "equals", "value": "Lyon"}))
                .with_traits(json!({"address": {"city": "Lyon"}}));
        assert!(nested.member(NOW));
        let dotted =
            Fixture::new(json!({"trait": "address.city", "op": "equals", "value": "Lyon"}))
                .with_traits(json!({"address.city": "Lyon"}));
        assert!(dotted.member(NOW));
    }

    #[test]
    fn relative_trait_dates_say_when_they_change() {
        let fixture =
            Fixture::new(json!({"trait": "trialEndsAt", "op": "withinLast", "value": "1d"}))
                .with_traits(json!({"trialEndsAt": "2026-03-10T18:00:00Z"}));
        let before_it = fixture.evaluate(NOW);
        assert_eq!(
            before_it,
            Evaluation {
                member: false,
                next_check: Some(at("2026-03-10T18:00:00Z"))
            }
        );
        let during = fixture.evaluate("2026-03-10T18:00:00Z");
        assert_eq!(
            during,
            Evaluation {
                member: true,
                next_check: Some(at("2026-03-11T18:00:00Z"))
            }
        );
        assert_eq!(
            fixture.evaluate("2026-03-11T18:00:00Z"),
            Evaluation {
                member: false,
                next_check: None
            }
        );

        let signed_up =
            Fixture::new(json!({"trait": "signedUpAt", "op": "before", "value": "30d"}))
                .with_traits(json!({"signedUpAt": "2026-03-01T00:00:00Z"}));
        assert_eq!(
            signed_up.evaluate(NOW),
            Evaluation {
                member: false,
                next_check: Some(at("2026-03-31T00:00:00Z"))
            }
        );
        assert!(signed_up.member("2026-03-31T00:00:00Z"));
    }

    #[test]
    fn performed_counts_ever_and_with_count_rules() {
        let mut fixture = Fixture::new(
            json!({"performed": {"event": "Order Completed", "count": {"atLeast": 2}}}),
        );
        assert!(!fixture.member(NOW));
        fixture.track("Order Completed", json!({}), "2025-01-01T00:00:00Z");
        assert!(!fixture.member(NOW));
        fixture.track("Order Completed", json!({}), "2026-03-01T00:00:00Z");
        assert_eq!(
            fixture.evaluate(NOW),
            Evaluation {
                member: true,
                next_check: None
            }
        );

        let mut at_most =
            Fixture::new(json!({"performed": {"event": "Login", "count": {"atMost": 1}}}));
        assert!(at_most.member(NOW));
        at_most.track("Login", json!({}), "2026-03-01T00:00:00Z");
        assert!(at_most.member(NOW));
        at_most.track("Login", json!({}), "2026-03-02T00:00:00Z");
        assert!(!at_most.member(NOW));

        let mut exactly =
            Fixture::new(json!({"performed": {"event": "Login", "count": {"exactly": 1}}}));
        assert!(!exactly.member(NOW));
        exactly.track("Login", json!({}), "2026-03-01T00:00:00Z");
        assert!(exactly.member(NOW));
    }

    #[test]
    fn performed_with_filters_and_page_type() {
        let mut fixture = Fixture::new(json!({"performed": {
            "event": "Order Completed",
            "where": [{"property": "product.price", "op": "gte", "value": 100}, {"property": "currency", "op": "in", "value": ["EUR", "USD"]}]
        }}));
        fixture.track(
            "Order Completed",
            json!({"product": {"price": 150}, "currency": "GBP"}),
            NOW,
        );
        assert!(!fixture.member(NOW));
        fixture.track(
            "Order Completed",
            json!({"product": {"price": 150}, "currency": "EUR"}),
            NOW,
        );
        assert!(fixture.member(NOW));

        let mut pages = Fixture::new(json!({"performed": {"event": "Pricing", "type": "page"}}));
        pages.track("Pricing", json!({}), NOW);
        assert!(
            !pages.member(NOW),
            "a track call does not count as a page view"
        );
        pages.event(EventType::Page, "Pricing", json!({}), NOW);
        assert!(pages.member(NOW));
    }

    #[test]
    fn a_user_enters_on_an_event_and_exits_exactly_when_the_window_passes() {
        let mut fixture = Fixture::new(json!({"performed": {"event": "Login", "within": "1h"}}));
        assert_eq!(
            fixture.evaluate("2026-03-10T10:00:00Z"),
            Evaluation {
                member: false,
                next_check: None
            }
        );
        fixture.track("Login", json!({}), "2026-03-10T10:00:00Z");
        let entered = fixture.evaluate("2026-03-10T10:00:00Z");
        assert_eq!(
            entered,
            Evaluation {
                member: true,
                next_check: Some(at("2026-03-10T11:01:00Z"))
            }
        );
        assert!(fixture.member("2026-03-10T11:00:59.999999999Z"));
        assert!(!fixture.member("2026-03-10T11:01:00Z"));
    }

    #[test]
    fn at_least_two_within_a_window_leaves_when_the_second_to_last_expires() {
        let mut fixture = Fixture::new(
            json!({"performed": {"event": "Login", "within": "1d", "count": {"atLeast": 2}}}),
        );
        fixture.track("Login", json!({}), "2026-03-10T08:00:00Z");
        fixture.track("Login", json!({}), "2026-03-10T09:00:00Z");
        fixture.track("Login", json!({}), "2026-03-10T10:00:00Z");
        let now = fixture.evaluate("2026-03-10T12:00:00Z");
        // Three in the window: the count drops below two when the 09:00 occurrence leaves.
        assert_eq!(
            now,
            Evaluation {
                member: true,
                next_check: Some(at("2026-03-11T09:01:00Z"))
            }
        );
        assert!(fixture.member("2026-03-11T09:00:59Z"));
        assert!(!fixture.member("2026-03-11T09:01:00Z"));
    }

    #[test]
    fn not_performed_enters_as_the_window_passes_and_exits_on_a_new_event() {
        let mut fixture =
            Fixture::new(json!({"notPerformed": {"event": "Email Opened", "within": "30d"}}));
        assert!(fixture.member(NOW), "never performed");
        fixture.track("Email Opened", json!({}), "2026-03-10T12:00:00Z");
        let left = fixture.evaluate("2026-03-10T12:00:00Z");
        assert_eq!(
            left,
            Evaluation {
                member: false,
                next_check: Some(at("2026-04-09T12:01:00Z"))
            }
        );
        assert!(!fixture.member("2026-04-09T12:00:59Z"));
        assert!(fixture.member("2026-04-09T12:01:00Z"));
        fixture.track("Email Opened", json!({}), "2026-04-10T00:00:00Z");
        assert!(!fixture.member("2026-04-10T00:00:00Z"));

        let mut ever = Fixture::new(json!({"notPerformed": {"event": "Signup"}}));
        assert!(ever.member(NOW));
        ever.track("Signup", json!({}), "2020-01-01T00:00:00Z");
        assert!(!ever.member(NOW));
    }

    #[test]
    fn last_event_reads_the_most_recent_occurrence() {
        let mut fixture = Fixture::new(
            json!({"lastEvent": {"event": "Plan Changed", "where": [{"property": "plan", "op": "equals", "value": "pro"}]}}),
        );
        assert!(!fixture.member(NOW), "never happened");
        fixture.track(
            "Plan Changed",
            json!({"plan": "pro"}),
            "2026-03-01T00:00:00Z",
        );
        assert!(fixture.member(NOW));
        fixture.track(
            "Plan Changed",
            json!({"plan": "free"}),
            "2026-03-02T00:00:00Z",
        );
        assert!(!fixture.member(NOW));
        fixture.track(
            "Plan Changed",
            json!({"plan": "pro"}),
            "2026-02-01T00:00:00Z",
        );
        assert!(
            !fixture.member(NOW),
            "an older occurrence arriving late is not the last one"
        );
    }

    #[test]
    fn subscription_list_everyone_and_segment_references() {
        let mut subscribed =
            Fixture::new(json!({"subscription": {"group": "newsletter", "state": "subscribed"}}));
        assert!(!subscribed.member(NOW));
        subscribed
            .state
            .set_subscription("newsletter", SubscriptionState::Subscribed);
        assert!(subscribed.member(NOW));
        subscribed
            .state
            .set_subscription("newsletter", SubscriptionState::Unsubscribed);
        assert!(!subscribed.member(NOW));

        let mut listed = Fixture::new(json!({"list": "vip"}));
        assert!(!listed.member(NOW));
        listed.state.add_to_list("vip");
        assert!(listed.member(NOW));
        listed.state.remove_from_list("vip");
        assert!(!listed.member(NOW));

        assert!(Fixture::new(json!({"everyone": true})).member(NOW));

        let mut referencing = Fixture::new(json!({"segment": "active"}));
        assert!(!referencing.member(NOW));
        referencing.memberships.insert("active".into());
        assert!(referencing.member(NOW));
    }

    #[test]
    fn all_any_not_combine_and_carry_the_right_next_check() {
        let condition = json!({"all": [
            {"trait": "plan", "op": "equals", "value": "pro"},
            {"not": {"performed": {"event": "Login", "within": "1h"}}}
        ]});
        let mut fixture = Fixture::new(condition).with_traits(json!({"plan": "pro"}));
        assert!(fixture.member(NOW));
        fixture.track("Login", json!({}), NOW);
        assert_eq!(
            fixture.evaluate(NOW),
            Evaluation {
                member: false,
                next_check: Some(at("2026-03-10T13:01:00Z"))
            }
        );
        assert!(fixture.member("2026-03-10T13:01:00Z"));

        let any = Fixture::new(json!({"any": [{"list": "a"}, {"trait": "plan", "op": "exists"}]}))
            .with_traits(json!({"plan": "free"}));
        assert!(any.member(NOW));
        let none = Fixture::new(json!({"any": [{"list": "a"}, {"list": "b"}]}));
        assert!(!none.member(NOW));
    }

    #[test]
    fn engagement_counts_opens_of_a_template_within_a_window() {
        let mut fixture = Fixture::new(
            json!({"engagement": {"kind": "opened", "template": "welcome", "within": "7d"}}),
        );
        assert!(!fixture.member(NOW));
        let opened = EngagementFacts {
            kind: EngagementKind::Opened,
            template: Some("welcome"),
            journey: None,
            broadcast: None,
            at: at(NOW),
        };
        fixture
            .state
            .record_engagement(&fixture.requirements, &opened, at(NOW));
        assert!(fixture.member(NOW));
        assert!(!fixture.member("2026-03-17T12:01:00Z"));

        let mut bounced = Fixture::new(
            json!({"engagement": {"kind": "bounced", "broadcast": "spring", "count": {"exactly": 0}}}),
        );
        assert!(bounced.member(NOW));
        let bounce = EngagementFacts {
            kind: EngagementKind::Bounced,
            broadcast: Some("spring"),
            template: None,
            ..opened
        };
        bounced
            .state
            .record_engagement(&bounced.requirements, &bounce, at(NOW));
        assert!(!bounced.member(NOW));
    }

    #[test]
    fn random_bucket_is_stable_and_close_to_its_share() {
        let fixture = Fixture::new(json!({"randomBucket": {"percent": 10}}));
        let mut members = 0;
        for n in 0..10_000 {
            let user_id = format!("user-{n}");
            let facts = UserFacts {
                user_id: &user_id,
                traits: &fixture.traits,
                state: &fixture.state,
                memberships: &(),
            };
            let first = evaluate("segment-1", &fixture.condition, &facts, at(NOW)).member;
            let again = evaluate(
                "segment-1",
                &fixture.condition,
                &facts,
                at("2030-01-01T00:00:00Z"),
            )
            .member;
            assert_eq!(first, again);
            members += usize::from(first);
        }
        assert!(
            (900..=1_100).contains(&members),
            "{members} of 10 000 in a 10% bucket"
        );
        // The hash is part of the language's contract: these buckets were computed with another
        // SHA-256 implementation and must never change, or users would move between A/B groups.
        assert_eq!(random_bucket_of("seed", "user-1"), 5_576);
        assert_eq!(random_bucket_of("segment-1", "user-42"), 4_865);
        assert!(!Fixture::new(json!({"randomBucket": {"percent": 0}})).member(NOW));
        assert!(Fixture::new(json!({"randomBucket": {"percent": 100, "seed": "x"}})).member(NOW));
    }

    #[test]
    fn an_unseeded_random_bucket_draws_different_users_per_segment() {
        let fixture = Fixture::new(json!({"randomBucket": {"percent": 50}}));
        let differing = (0..1_000)
            .filter(|n| {
                let user_id = format!("user-{n}");
                let facts = UserFacts {
                    user_id: &user_id,
                    traits: &fixture.traits,
                    state: &fixture.state,
                    memberships: &(),
                };
                evaluate("a", &fixture.condition, &facts, at(NOW)).member
                    != evaluate("b", &fixture.condition, &facts, at(NOW)).member
            })
            .count();
        assert!(
            differing > 300,
            "{differing} of 1 000 users differ between two segments"
        );
    }

    #[test]
    fn windows_are_exact_at_the_bucket_edge_after_time_moves() {
        let mut fixture = Fixture::new(json!({"performed": {"event": "Login", "within": "15m"}}));
        fixture.track("Login", json!({}), "2026-03-10T10:00:59Z");
        let entered = fixture.evaluate("2026-03-10T10:01:00Z");
        assert_eq!(entered.next_check, Some(at("2026-03-10T10:16:00Z")));
        let just_before = at("2026-03-10T10:16:00Z") - SignedDuration::from_nanos(1);
        let facts = UserFacts {
            user_id: "u",
            traits: &fixture.traits,
            state: &fixture.state,
            memberships: &(),
        };
        assert!(evaluate("s", &fixture.condition, &facts, just_before).member);
        assert!(!fixture.member("2026-03-10T10:16:00Z"));
    }
}
