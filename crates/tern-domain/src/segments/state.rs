//! Per-user incremental state: what evaluation reads instead of the user's events.
//!
//! Each `performed` / `notPerformed` / `engagement` condition counts occurrences under a [`CounterKey`]. A
//! counter keeps the ever-total, the latest occurrence, and sparse time buckets (only buckets that hold
//! occurrences) for as long as the longest window that reads it. Buckets are a minute wide; a counter
//! holding more than [`MAX_BUCKETS`] buckets is coarsened to hours, then to days, so a busy user's state stays
//! small. A window therefore counts with the precision of the bucket width at hand: an occurrence stays in a
//! window of length W from the moment it happened until at most one bucket width after W has passed.
//!
//! The state also keeps the last occurrence of each event some `lastEvent` condition reads (only the
//! properties read), the user's subscription states and list memberships.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::definition::{
    Condition, CounterKey, EngagementKind, EventType, LastEventCondition, PropertyFilter,
    PropertyPath, SubscriptionState, TargetKind,
};
use super::evaluate::filter_matches_at_record;
use crate::ingest::event::{Event, EventKind};

/// The most buckets a counter keeps before it is coarsened to the next width.
pub const MAX_BUCKETS: usize = 256;

/// A bucket width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Resolution {
    #[default]
    #[serde(rename = "m")]
    Minute,
    #[serde(rename = "h")]
    Hour,
    #[serde(rename = "d")]
    Day,
}

impl Resolution {
    pub fn seconds(self) -> i64 {
        match self {
            Resolution::Minute => 60,
            Resolution::Hour => 3_600,
            Resolution::Day => 86_400,
        }
    }

    fn is_minute(&self) -> bool {
        *self == Resolution::Minute
    }

    fn coarser(self) -> Option<Resolution> {
        match self {
            Resolution::Minute => Some(Resolution::Hour),
            Resolution::Hour => Some(Resolution::Day),
            Resolution::Day => None,
        }
    }
}

/// Whole seconds since the epoch, rounded down (also before 1970).
pub(crate) fn floor_seconds(instant: Timestamp) -> i64 {
    let seconds = instant.as_second();
    if instant.subsec_nanosecond() < 0 {
        seconds - 1
    } else {
        seconds
    }
}

/// Occurrences of one counted thing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counter {
    /// Every occurrence ever recorded.
    #[serde(rename = "t")]
    pub total: u64,
    /// The latest occurrence, in seconds since the epoch.
    #[serde(rename = "l")]
    pub latest: i64,
    #[serde(rename = "r", default, skip_serializing_if = "Resolution::is_minute")]
    resolution: Resolution,
    /// `(bucket number, occurrences)`, sorted; bucket `n` covers `[n·width, (n+1)·width)` seconds. Stored
    /// as one flat list, each bucket number as the difference from the previous one (see `bucket_list`).
    #[serde(
        rename = "b",
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "bucket_list"
    )]
    buckets: Vec<(i64, u32)>,
}

impl Counter {
    pub fn resolution(&self) -> Resolution {
        self.resolution
    }

    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// The moment a bucket stops counting in a window of `window` seconds: a window counts every bucket
    /// that ends after `now - window`.
    fn expiry(&self, bucket: i64, window: i64) -> i64 {
        (bucket + 1) * self.resolution.seconds() + window
    }

    /// Records one occurrence at `at`; `retention` is the longest window that reads this counter (`None`:
    /// only the ever-total is read, so no bucket is kept).
    fn record(&mut self, at: Timestamp, retention: Option<i64>, now: Timestamp) {
        let at = floor_seconds(at);
        self.total = self.total.saturating_add(1);
        self.latest = if self.total == 1 {
            at
        } else {
            self.latest.max(at)
        };
        let Some(retention) = retention else {
            self.buckets.clear();
            return;
        };
        let now = floor_seconds(now);
        let bucket = at.div_euclid(self.resolution.seconds());
        if self.expiry(bucket, retention) > now {
            match self
                .buckets
                .binary_search_by_key(&bucket, |(number, _)| *number)
            {
                Ok(found) => self.buckets[found].1 = self.buckets[found].1.saturating_add(1),
                Err(slot) => self.buckets.insert(slot, (bucket, 1)),
            }
        }
        self.prune(retention, now);
        self.coarsen_while_over_cap();
    }

    /// Drops buckets that no window up to `retention` seconds can count any more at `now` (seconds).
    fn prune(&mut self, retention: i64, now: i64) {
        let keep_from = self
            .buckets
            .partition_point(|(bucket, _)| self.expiry(*bucket, retention) <= now);
        self.buckets.drain(..keep_from);
        if self.buckets.is_empty() {
            self.resolution = Resolution::Minute;
        }
    }

    fn coarsen_while_over_cap(&mut self) {
        while self.buckets.len() > MAX_BUCKETS {
            let Some(coarser) = self.resolution.coarser() else {
                return;
            };
            let ratio = coarser.seconds() / self.resolution.seconds();
            let mut merged: Vec<(i64, u32)> = Vec::with_capacity(self.buckets.len() / 2 + 1);
            for (bucket, count) in self.buckets.drain(..) {
                let wider = bucket.div_euclid(ratio);
                match merged.last_mut() {
                    Some((last, total)) if *last == wider => *total = total.saturating_add(count),
                    _ => merged.push((wider, count)),
                }
            }
            self.buckets = merged;
            self.resolution = coarser;
        }
    }

    /// The buckets still counting in a window of `window` seconds at `now`, oldest first.
    fn in_window(&self, window: i64, now: Timestamp) -> &[(i64, u32)] {
        let now = floor_seconds(now);
        let first = self
            .buckets
            .partition_point(|(bucket, _)| self.expiry(*bucket, window) <= now);
        &self.buckets[first..]
    }

    /// Occurrences within the last `window` seconds at `now` (to the bucket width).
    pub fn count_within(&self, window: i64, now: Timestamp) -> u64 {
        self.in_window(window, now)
            .iter()
            .map(|(_, count)| u64::from(*count))
            .sum()
    }

    /// The count within `window` at `now`, and the first later moment at which `accepts(count)` changes
    /// as buckets leave the window (with no new occurrence).
    pub fn window_outcome(
        &self,
        window: i64,
        now: Timestamp,
        accepts: impl Fn(u64) -> bool,
    ) -> (bool, Option<Timestamp>) {
        let buckets = self.in_window(window, now);
        let mut remaining: u64 = buckets.iter().map(|(_, count)| u64::from(*count)).sum();
        let result = accepts(remaining);
        for (bucket, count) in buckets {
            remaining -= u64::from(*count);
            if accepts(remaining) != result {
                let at = Timestamp::from_second(self.expiry(*bucket, window)).ok();
                return (result, at);
            }
        }
        (result, None)
    }
}

/// The stored form of a counter's buckets: `[first bucket, count, gap to the next bucket, count, …]`, about
/// half the size of a list of pairs. Reading it back checks that it describes sorted buckets.
mod bucket_list {
    use serde::de::Error as _;
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        buckets: &[(i64, u32)],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut list = serializer.serialize_seq(Some(buckets.len() * 2))?;
        let mut previous = None;
        for &(bucket, count) in buckets {
            list.serialize_element(&previous.map_or(bucket, |previous| bucket - previous))?;
            list.serialize_element(&count)?;
            previous = Some(bucket);
        }
        list.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<(i64, u32)>, D::Error> {
        let flat = Vec::<i64>::deserialize(deserializer)?;
        if flat.len() % 2 != 0 {
            return Err(D::Error::custom("buckets: a bucket without its count"));
        }
        let mut buckets: Vec<(i64, u32)> = Vec::with_capacity(flat.len() / 2);
        for pair in flat.chunks_exact(2) {
            let bucket = match buckets.last() {
                None => pair[0],
                Some(_) if pair[0] <= 0 => {
                    return Err(D::Error::custom("buckets: not in increasing order"));
                }
                Some((previous, _)) => previous
                    .checked_add(pair[0])
                    .ok_or_else(|| D::Error::custom("buckets: bucket number out of range"))?,
            };
            let count = u32::try_from(pair[1])
                .ok()
                .filter(|count| *count > 0)
                .ok_or_else(|| D::Error::custom("buckets: a count must be 1 or more"))?;
            buckets.push((bucket, count));
        }
        Ok(buckets)
    }
}

/// The last occurrence of an event: when, and the properties some segment reads (by path).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LastOccurrence {
    #[serde(rename = "t")]
    pub at: i64,
    #[serde(rename = "p", default, skip_serializing_if = "Map::is_empty")]
    pub properties: Map<String, Value>,
}

/// Everything evaluation reads about one user besides traits, kept up to date incrementally. Serializes
/// compactly (short field names, sparse buckets) so that it is stored as one attribute.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UserState {
    #[serde(rename = "c", default, skip_serializing_if = "BTreeMap::is_empty")]
    counters: BTreeMap<CounterKey, Counter>,
    #[serde(rename = "e", default, skip_serializing_if = "BTreeMap::is_empty")]
    last_events: BTreeMap<String, LastOccurrence>,
    #[serde(rename = "s", default, skip_serializing_if = "BTreeMap::is_empty")]
    subscriptions: BTreeMap<String, SubscriptionState>,
    #[serde(rename = "l", default, skip_serializing_if = "BTreeSet::is_empty")]
    lists: BTreeSet<String>,
}

/// A track, page or screen call, as the state sees it.
#[derive(Debug, Clone, Copy)]
pub struct EventFacts<'a> {
    pub kind: EventType,
    /// The track event's name, or the page / screen name.
    pub name: &'a str,
    pub properties: &'a Map<String, Value>,
    pub at: Timestamp,
}

impl<'a> EventFacts<'a> {
    /// The facts of an accepted event; `None` for calls no `performed` counts (identify, group, alias, and
    /// page/screen calls without a name).
    pub fn from_event(event: &'a Event) -> Option<EventFacts<'a>> {
        let (kind, name) = match event.kind {
            EventKind::Track => (EventType::Track, event.event.as_deref()?),
            EventKind::Page => (EventType::Page, event.name.as_deref()?),
            EventKind::Screen => (EventType::Screen, event.name.as_deref()?),
            EventKind::Identify | EventKind::Group | EventKind::Alias => return None,
        };
        Some(EventFacts {
            kind,
            name,
            properties: &event.properties,
            at: event.timestamp,
        })
    }
}

/// Something that happened to a message the user was sent. A message sent by a journey or a broadcast
/// names its template too, and counts for each.
#[derive(Debug, Clone, Copy)]
pub struct EngagementFacts<'a> {
    pub kind: EngagementKind,
    pub template: Option<&'a str>,
    pub journey: Option<&'a str>,
    pub broadcast: Option<&'a str>,
    pub at: Timestamp,
}

impl<'a> EngagementFacts<'a> {
    pub fn targets(&self) -> impl Iterator<Item = (TargetKind, &'a str)> {
        [
            (TargetKind::Template, self.template),
            (TargetKind::Journey, self.journey),
            (TargetKind::Broadcast, self.broadcast),
        ]
        .into_iter()
        .filter_map(|(kind, id)| id.map(|id| (kind, id)))
    }
}

/// A counter a condition reads, with the filters an event must pass to count.
#[derive(Debug, Clone, PartialEq)]
struct EventCounterSpec {
    kind: EventType,
    key: CounterKey,
    filters: Vec<PropertyFilter>,
}

/// A last occurrence a `lastEvent` condition reads, with the properties to keep.
#[derive(Debug, Clone, PartialEq)]
struct LastEventSpec {
    kind: EventType,
    key: String,
    paths: Vec<PropertyPath>,
}

#[derive(Debug, Clone, Default)]
struct EventNeeds {
    counters: Vec<EventCounterSpec>,
    last: Vec<LastEventSpec>,
}

/// What the state must maintain for a set of active segments: which counters (and for how long) and which
/// last-event properties. Built by [`super::SegmentIndex`]; looked up by event name or engagement target.
#[derive(Debug, Clone, Default)]
pub struct Requirements {
    events: HashMap<String, EventNeeds>,
    engagements: HashMap<String, Vec<(EngagementKind, TargetKind, CounterKey)>>,
    /// The longest window reading each counter, in seconds (`None`: only the ever-total is read).
    retention: HashMap<CounterKey, Option<i64>>,
}

impl Requirements {
    /// Adds what `condition` (and everything nested in it) reads.
    pub fn add(&mut self, condition: &Condition) {
        condition.walk(&mut |condition| match condition {
            Condition::Performed(performed) | Condition::NotPerformed(performed) => {
                let needs = self.events.entry(performed.event.clone()).or_default();
                if !needs.counters.iter().any(|spec| spec.key == performed.key) {
                    needs.counters.push(EventCounterSpec {
                        kind: performed.kind,
                        key: performed.key,
                        filters: performed.filters.clone(),
                    });
                }
                self.need_counter(performed.key, performed.within.map(|w| w.seconds()));
            }
            Condition::Engagement(engagement) => {
                let entry = (engagement.kind, engagement.target.kind, engagement.key);
                let needs = self
                    .engagements
                    .entry(engagement.target.id.clone())
                    .or_default();
                if !needs.contains(&entry) {
                    needs.push(entry);
                }
                self.need_counter(engagement.key, engagement.within.map(|w| w.seconds()));
            }
            Condition::LastEvent(last) => self.need_last_event(last),
            _ => {}
        });
    }

    fn need_counter(&mut self, key: CounterKey, window: Option<i64>) {
        let retention = self.retention.entry(key).or_insert(window);
        *retention = match (*retention, window) {
            (Some(kept), Some(window)) => Some(kept.max(window)),
            (kept, window) => kept.or(window),
        };
    }

    fn need_last_event(&mut self, last: &LastEventCondition) {
        let needs = self.events.entry(last.event.clone()).or_default();
        let spec = match needs.last.iter_mut().find(|spec| spec.key == last.key) {
            Some(spec) => spec,
            None => {
                needs.last.push(LastEventSpec {
                    kind: last.kind,
                    key: last.key.clone(),
                    paths: Vec::new(),
                });
                needs.last.last_mut().expect("just pushed")
            }
        };
        for filter in &last.filters {
            if !spec.paths.contains(&filter.path) {
                spec.paths.push(filter.path.clone());
            }
        }
    }

    /// Every counter kept, with the longest window reading it in seconds (`None`: ever-total only).
    pub fn counters(&self) -> impl Iterator<Item = (CounterKey, Option<i64>)> + '_ {
        self.retention
            .iter()
            .map(|(key, retention)| (*key, *retention))
    }

    /// Every last occurrence kept (`track:Plan Changed`), with the property paths kept for it.
    pub fn last_events(&self) -> impl Iterator<Item = (&str, Vec<&str>)> + '_ {
        self.events.values().flat_map(|needs| {
            needs.last.iter().map(|spec| {
                (
                    spec.key.as_str(),
                    spec.paths.iter().map(PropertyPath::as_str).collect(),
                )
            })
        })
    }

    /// Whether any track, page or screen call changes state (some condition counts or keeps events).
    pub fn reads_any_event(&self) -> bool {
        !self.events.is_empty()
    }

    /// Whether an event of this type and name changes any state.
    pub fn reads_event(&self, kind: EventType, name: &str) -> bool {
        self.events.get(name).is_some_and(|needs| {
            needs.counters.iter().any(|spec| spec.kind == kind)
                || needs.last.iter().any(|spec| spec.kind == kind)
        })
    }
}

impl UserState {
    pub fn counter(&self, key: CounterKey) -> Option<&Counter> {
        self.counters.get(&key)
    }

    /// The last occurrence kept under `key` (`LastEventCondition::state_key`).
    pub fn last_event(&self, key: &str) -> Option<&LastOccurrence> {
        self.last_events.get(key)
    }

    pub fn subscription(&self, group: &str) -> Option<SubscriptionState> {
        self.subscriptions.get(group).copied()
    }

    pub fn in_list(&self, list: &str) -> bool {
        self.lists.contains(list)
    }

    /// Counts a track/page/screen event in every counter whose filters it passes and keeps it as the last
    /// occurrence where one is read. Returns whether the state changed. `now` decides which buckets are
    /// past every window and dropped.
    pub fn record_event(
        &mut self,
        requirements: &Requirements,
        event: &EventFacts<'_>,
        now: Timestamp,
    ) -> bool {
        let Some(needs) = requirements.events.get(event.name) else {
            return false;
        };
        let mut changed = false;
        for spec in needs.counters.iter().filter(|spec| spec.kind == event.kind) {
            let passes = spec
                .filters
                .iter()
                .all(|filter| filter_matches_at_record(filter, event.properties));
            if passes {
                let retention = requirements.retention.get(&spec.key).copied().flatten();
                self.counters
                    .entry(spec.key)
                    .or_default()
                    .record(event.at, retention, now);
                changed = true;
            }
        }
        for spec in needs.last.iter().filter(|spec| spec.kind == event.kind) {
            changed |= self.keep_last_occurrence(spec, event);
        }
        changed
    }

    /// Keeps `event` as the last occurrence unless a later one is already kept.
    fn keep_last_occurrence(&mut self, spec: &LastEventSpec, event: &EventFacts<'_>) -> bool {
        let at = floor_seconds(event.at);
        if self
            .last_events
            .get(&spec.key)
            .is_some_and(|kept| kept.at > at)
        {
            return false;
        }
        let properties = spec
            .paths
            .iter()
            .filter_map(|path| {
                path.lookup(event.properties)
                    .map(|value| (path.as_str().to_owned(), value.clone()))
            })
            .collect();
        self.last_events
            .insert(spec.key.clone(), LastOccurrence { at, properties });
        true
    }

    /// Counts an engagement for each target it names that some condition reads. Returns whether the state
    /// changed.
    pub fn record_engagement(
        &mut self,
        requirements: &Requirements,
        engagement: &EngagementFacts<'_>,
        now: Timestamp,
    ) -> bool {
        let mut changed = false;
        for (target_kind, id) in engagement.targets() {
            let Some(needs) = requirements.engagements.get(id) else {
                continue;
            };
            for (kind, needed_target, key) in needs {
                if *kind == engagement.kind && *needed_target == target_kind {
                    let retention = requirements.retention.get(key).copied().flatten();
                    self.counters
                        .entry(*key)
                        .or_default()
                        .record(engagement.at, retention, now);
                    changed = true;
                }
            }
        }
        changed
    }

    /// Sets the user's state in a subscription group; returns whether it changed.
    pub fn set_subscription(&mut self, group: &str, state: SubscriptionState) -> bool {
        self.subscriptions.insert(group.to_owned(), state) != Some(state)
    }

    /// Adds the user to a manual list; returns whether it changed.
    pub fn add_to_list(&mut self, list: &str) -> bool {
        self.lists.insert(list.to_owned())
    }

    /// Removes the user from a manual list; returns whether it changed.
    pub fn remove_from_list(&mut self, list: &str) -> bool {
        self.lists.remove(list)
    }

    /// Rebuilds, from past events, the counters and last occurrences `condition` reads that this state
    /// does not hold yet, as if they had been kept all along (what a backfill does for a new segment, from
    /// the user's hot events). What the state already holds is kept as is, so nothing counts twice.
    /// Returns whether the state changed.
    pub fn adopt_history<'e>(
        &mut self,
        condition: &Condition,
        history: impl IntoIterator<Item = EventFacts<'e>>,
        now: Timestamp,
    ) -> bool {
        let mut requirements = Requirements::default();
        requirements.add(condition);
        let mut rebuilt = UserState::default();
        for event in history {
            rebuilt.record_event(&requirements, &event, now);
        }
        let mut changed = false;
        for (key, counter) in rebuilt.counters {
            if let std::collections::btree_map::Entry::Vacant(entry) = self.counters.entry(key) {
                entry.insert(counter);
                changed = true;
            }
        }
        for (key, last) in rebuilt.last_events {
            if let std::collections::btree_map::Entry::Vacant(entry) = self.last_events.entry(key) {
                entry.insert(last);
                changed = true;
            }
        }
        changed
    }

    /// Drops what no active segment reads any more (counters, buckets past every window, last
    /// occurrences), e.g. before the state is stored after the segments changed.
    pub fn compact(&mut self, requirements: &Requirements, now: Timestamp) {
        let now = floor_seconds(now);
        self.counters
            .retain(|key, counter| match requirements.retention.get(key) {
                None => false,
                Some(None) => {
                    counter.buckets.clear();
                    true
                }
                Some(Some(retention)) => {
                    counter.prune(*retention, now);
                    true
                }
            });
        let kept: BTreeSet<&str> = requirements.last_events().map(|(key, _)| key).collect();
        self.last_events
            .retain(|key, _| kept.contains(key.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segments::SegmentDefinition;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("test timestamp")
    }

    fn requirements(condition: &str) -> (Requirements, Condition) {
        let definition =
            SegmentDefinition::from_json(&format!(r#"{{"name":"t","condition":{condition}}}"#))
                .expect("valid definition");
        let mut requirements = Requirements::default();
        requirements.add(&definition.condition);
        (requirements, definition.condition)
    }

    fn performed_key(condition: &Condition) -> CounterKey {
        match condition {
            Condition::Performed(performed) | Condition::NotPerformed(performed) => performed.key,
            other => panic!("not a performed condition: {other:?}"),
        }
    }

    fn track<'a>(
        name: &'a str,
        properties: &'a Map<String, Value>,
        when: Timestamp,
    ) -> EventFacts<'a> {
        EventFacts {
            kind: EventType::Track,
            name,
            properties,
            at: when,
        }
    }

    #[test]
    fn a_window_counts_an_occurrence_until_the_end_of_its_bucket_plus_the_window() {
        let (requirements, condition) =
            requirements(r#"{"performed":{"event":"Login","within":"1h"}}"#);
        let key = performed_key(&condition);
        let mut state = UserState::default();
        let properties = Map::new();
        let happened = at("2026-03-01T10:00:30Z");
        state.record_event(
            &requirements,
            &track("Login", &properties, happened),
            happened,
        );
        let counter = state.counter(key).expect("counter kept");
        // The occurrence's minute bucket ends at 10:01:00; a one-hour window counts it until 11:01:00.
        assert_eq!(counter.count_within(3_600, at("2026-03-01T11:00:59Z")), 1);
        assert_eq!(
            counter.count_within(3_600, at("2026-03-01T11:00:59.999Z")),
            1
        );
        assert_eq!(counter.count_within(3_600, at("2026-03-01T11:01:00Z")), 0);
        assert_eq!(counter.total, 1);
    }

    #[test]
    fn only_events_that_pass_the_filters_are_counted() {
        let (requirements, condition) = requirements(
            r#"{"performed":{"event":"Order Completed","where":[{"property":"total","op":"gt","value":50}]}}"#,
        );
        let key = performed_key(&condition);
        let mut state = UserState::default();
        let now = at("2026-03-01T10:00:00Z");
        let small = serde_json::json!({"total": 20})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let large = serde_json::json!({"total": "80"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert!(!state.record_event(&requirements, &track("Order Completed", &small, now), now));
        assert!(state.record_event(&requirements, &track("Order Completed", &large, now), now));
        assert!(!state.record_event(&requirements, &track("Other", &large, now), now));
        assert_eq!(state.counter(key).map(|counter| counter.total), Some(1));
    }

    #[test]
    fn a_counter_read_only_as_ever_keeps_no_buckets() {
        let (requirements, condition) = requirements(r#"{"performed":{"event":"Login"}}"#);
        let mut state = UserState::default();
        let properties = Map::new();
        let now = at("2026-03-01T10:00:00Z");
        state.record_event(&requirements, &track("Login", &properties, now), now);
        let counter = state
            .counter(performed_key(&condition))
            .expect("counter kept");
        assert_eq!((counter.total, counter.bucket_count()), (1, 0));
    }

    #[test]
    fn a_busy_counter_is_coarsened_to_hours_then_days_and_keeps_its_count() {
        let (requirements, condition) =
            requirements(r#"{"performed":{"event":"Tick","within":"365d"}}"#);
        let key = performed_key(&condition);
        let mut state = UserState::default();
        let properties = Map::new();
        let start = at("2026-01-01T00:00:00Z");
        // One occurrence every 7 minutes for 60 days: 12 343 occurrences.
        let occurrences = 60 * 24 * 60 / 7;
        let mut now = start;
        for step in 0..occurrences {
            now = start + jiff::SignedDuration::from_mins(7 * step);
            state.record_event(&requirements, &track("Tick", &properties, now), now);
        }
        let counter = state.counter(key).expect("counter kept");
        assert_eq!(counter.resolution(), Resolution::Day);
        assert!(counter.bucket_count() <= MAX_BUCKETS);
        assert_eq!(counter.count_within(365 * 86_400, now), occurrences as u64);
        assert_eq!(counter.total, occurrences as u64);
    }

    #[test]
    fn buckets_past_the_longest_window_are_pruned_but_the_total_stays() {
        let (requirements, condition) = requirements(
            r#"{"any":[{"performed":{"event":"Login","within":"1h"}},{"performed":{"event":"Login","within":"2h","count":{"atLeast":2}}}]}"#,
        );
        let key = performed_key(match &condition {
            Condition::Any(children) => &children[0],
            other => other,
        });
        let mut state = UserState::default();
        let properties = Map::new();
        let first = at("2026-03-01T10:00:00Z");
        state.record_event(&requirements, &track("Login", &properties, first), first);
        let later = at("2026-03-01T12:30:00Z");
        state.record_event(&requirements, &track("Login", &properties, later), later);
        let counter = state.counter(key).expect("counter kept");
        assert_eq!((counter.bucket_count(), counter.total), (1, 2));
    }

    #[test]
    fn the_last_occurrence_keeps_only_read_properties_and_ignores_older_arrivals() {
        let (requirements, _) = requirements(
            r#"{"lastEvent":{"event":"Plan Changed","where":[{"property":"plan.name","op":"equals","value":"pro"}]}}"#,
        );
        let mut state = UserState::default();
        let newer = serde_json::json!({"plan": {"name": "pro"}, "other": 1})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let older = serde_json::json!({"plan": {"name": "free"}})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let now = at("2026-03-01T10:00:00Z");
        state.record_event(&requirements, &track("Plan Changed", &newer, now), now);
        let earlier = at("2026-03-01T09:00:00Z");
        assert!(!state.record_event(&requirements, &track("Plan Changed", &older, earlier), now));
        let kept = state.last_event("track:Plan Changed").expect("kept");
        assert_eq!(
            Value::Object(kept.properties.clone()),
            serde_json::json!({"plan.name": "pro"})
        );
    }

    #[test]
    fn engagements_count_for_each_target_the_message_names() {
        let (requirements, condition) =
            requirements(r#"{"engagement":{"kind":"opened","journey":"welcome","within":"30d"}}"#);
        let Condition::Engagement(engagement) = &condition else {
            panic!("engagement")
        };
        let mut state = UserState::default();
        let now = at("2026-03-01T10:00:00Z");
        let opened = EngagementFacts {
            kind: EngagementKind::Opened,
            template: Some("t-1"),
            journey: Some("welcome"),
            broadcast: None,
            at: now,
        };
        assert!(state.record_engagement(&requirements, &opened, now));
        let clicked = EngagementFacts {
            kind: EngagementKind::Clicked,
            ..opened
        };
        assert!(!state.record_engagement(&requirements, &clicked, now));
        assert_eq!(state.counter(engagement.key).map(|c| c.total), Some(1));
    }

    #[test]
    fn the_state_round_trips_through_its_compact_json() {
        let (requirements, _) = requirements(r#"{"performed":{"event":"Login","within":"1d"}}"#);
        let mut state = UserState::default();
        let properties = Map::new();
        let now = at("2026-03-01T10:00:00Z");
        state.record_event(&requirements, &track("Login", &properties, now), now);
        state.set_subscription("newsletter", SubscriptionState::Subscribed);
        state.add_to_list("vip");
        let json = serde_json::to_string(&state).expect("serializes");
        let back: UserState = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, state);
        // The stored form: short names, the counter key as a number, buckets as [minute number, count, …].
        assert_eq!(
            json,
            r#"{"c":{"8905199948188042237":{"t":1,"l":1772359200,"b":[29539320,1]}},"s":{"newsletter":"subscribed"},"l":["vip"]}"#
        );
    }

    #[test]
    fn buckets_are_stored_as_gaps_and_malformed_lists_are_rejected() {
        let counter = Counter {
            total: 3,
            latest: 120,
            resolution: Resolution::Minute,
            buckets: vec![(1, 1), (2, 2)],
        };
        let json = serde_json::to_string(&counter).expect("serializes");
        assert_eq!(json, r#"{"t":3,"l":120,"b":[1,1,1,2]}"#);
        assert_eq!(serde_json::from_str::<Counter>(&json).ok(), Some(counter));
        for broken in [
            r#"{"t":1,"l":0,"b":[1]}"#,
            r#"{"t":1,"l":0,"b":[5,1,0,1]}"#,
            r#"{"t":1,"l":0,"b":[5,0]}"#,
        ] {
            assert!(
                serde_json::from_str::<Counter>(broken).is_err(),
                "{broken} should be rejected"
            );
        }
    }

    #[test]
    fn compact_drops_counters_no_segment_reads() {
        let (requirements, _) = requirements(r#"{"performed":{"event":"Login","within":"1d"}}"#);
        let mut state = UserState::default();
        let properties = Map::new();
        let now = at("2026-03-01T10:00:00Z");
        state.record_event(&requirements, &track("Login", &properties, now), now);
        state.compact(&Requirements::default(), now);
        assert_eq!(state, UserState::default());
    }
}
