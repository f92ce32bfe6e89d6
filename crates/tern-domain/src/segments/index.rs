//! The index of active segments: which segments an input can affect (so that an event re-evaluates only
//! those), in dependency order, and what the per-user state must maintain for them.
//!
//! Segments are kept in dependency order (a segment after every segment it references), so the segments an
//! input affects, plus every segment that references them (transitively), come out in an order where each
//! reference is evaluated before the segment that reads it.

use std::collections::{BTreeSet, HashMap, HashSet};

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::definition::{
    Condition, DefinitionError, EngagementKind, EventType, SegmentDefinition, TargetKind,
};
use super::evaluate::{Evaluation, UserFacts, evaluate};
use super::state::{EngagementFacts, Requirements, UserState};

/// An active segment in the index.
#[derive(Debug, Clone)]
pub struct IndexedSegment {
    pub id: String,
    pub definition: SegmentDefinition,
    /// Whether membership can change as time passes with no new input (windows, relative dates).
    pub time_dependent: bool,
}

#[derive(Debug, Clone, Default)]
pub struct SegmentIndex {
    /// In dependency order.
    segments: Vec<IndexedSegment>,
    positions: HashMap<String, usize>,
    by_event: HashMap<String, Vec<(EventType, usize)>>,
    by_trait: HashMap<String, Vec<usize>>,
    by_subscription: HashMap<String, Vec<usize>>,
    by_engagement: HashMap<String, Vec<(EngagementKind, TargetKind, usize)>>,
    by_list: HashMap<String, Vec<usize>>,
    /// For each position, the positions of the segments that reference it directly (always later ones).
    dependents: Vec<Vec<usize>>,
    requirements: Requirements,
}

fn push_unique<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

impl SegmentIndex {
    /// Indexes the active segments. Rejects duplicate ids, references to unknown segments and reference
    /// cycles (the error names the cycle: `a → b → a`), collecting every error.
    pub fn build(
        segments: &[(String, SegmentDefinition)],
    ) -> Result<SegmentIndex, Vec<DefinitionError>> {
        let mut errors = Vec::new();
        let mut input_positions: HashMap<&str, usize> = HashMap::new();
        for (position, (id, _)) in segments.iter().enumerate() {
            if input_positions.insert(id.as_str(), position).is_some() {
                errors.push(DefinitionError::new(
                    format!("segments.{id}"),
                    "the same segment id appears twice",
                ));
            }
        }
        let references: Vec<Vec<usize>> = segments
            .iter()
            .map(|(id, definition)| {
                let mut found = Vec::new();
                collect_references(
                    &definition.condition,
                    &format!("segments.{id}.condition"),
                    &mut found,
                );
                found
                    .into_iter()
                    .filter_map(|(target, path)| match input_positions.get(target) {
                        Some(position) => Some(*position),
                        None => {
                            errors.push(DefinitionError::new(
                                path,
                                format!("references unknown segment \"{target}\""),
                            ));
                            None
                        }
                    })
                    .collect()
            })
            .collect();
        let order = dependency_order(segments, &references, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self::from_order(segments, &references, &order))
    }

    fn from_order(
        segments: &[(String, SegmentDefinition)],
        references: &[Vec<usize>],
        order: &[usize],
    ) -> SegmentIndex {
        let mut index = SegmentIndex::default();
        let mut new_position = vec![0; segments.len()];
        for (position, &original) in order.iter().enumerate() {
            new_position[original] = position;
        }
        index.dependents = vec![Vec::new(); segments.len()];
        for &original in order {
            let (id, definition) = &segments[original];
            let position = new_position[original];
            for &referenced in &references[original] {
                push_unique(&mut index.dependents[new_position[referenced]], position);
            }
            index.add_inputs(position, &definition.condition);
            index.requirements.add(&definition.condition);
            index.positions.insert(id.clone(), position);
            index.segments.push(IndexedSegment {
                id: id.clone(),
                definition: definition.clone(),
                time_dependent: is_time_dependent(&definition.condition),
            });
        }
        index
    }

    /// Files the segment at `position` under every input its condition reads.
    fn add_inputs(&mut self, position: usize, condition: &Condition) {
        condition.walk(&mut |condition| match condition {
            Condition::Trait(filter) => {
                push_unique(
                    self.by_trait
                        .entry(filter.path.root().to_owned())
                        .or_default(),
                    position,
                );
                if filter.path.as_str() != filter.path.root() {
                    // A key spelled with dots (`"address.city": …`) is read as a whole too.
                    push_unique(
                        self.by_trait
                            .entry(filter.path.as_str().to_owned())
                            .or_default(),
                        position,
                    );
                }
            }
            Condition::Performed(performed) | Condition::NotPerformed(performed) => push_unique(
                self.by_event.entry(performed.event.clone()).or_default(),
                (performed.kind, position),
            ),
            Condition::LastEvent(last) => push_unique(
                self.by_event.entry(last.event.clone()).or_default(),
                (last.kind, position),
            ),
            Condition::Subscription(subscription) => push_unique(
                self.by_subscription
                    .entry(subscription.group.clone())
                    .or_default(),
                position,
            ),
            Condition::Engagement(engagement) => push_unique(
                self.by_engagement
                    .entry(engagement.target.id.clone())
                    .or_default(),
                (engagement.kind, engagement.target.kind, position),
            ),
            Condition::List(list) => {
                push_unique(self.by_list.entry(list.clone()).or_default(), position)
            }
            _ => {}
        });
    }

    /// What the per-user state must maintain for these segments.
    pub fn requirements(&self) -> &Requirements {
        &self.requirements
    }

    /// Every segment, in dependency order.
    pub fn segments(&self) -> &[IndexedSegment] {
        &self.segments
    }

    pub fn get(&self, id: &str) -> Option<&IndexedSegment> {
        self.positions
            .get(id)
            .map(|&position| &self.segments[position])
    }

    pub fn len(&self) -> usize {
        self.segments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Evaluates one indexed segment for a user; `None` if no segment has this id.
    pub fn evaluate(&self, id: &str, facts: &UserFacts<'_>, now: Timestamp) -> Option<Evaluation> {
        let segment = self.get(id)?;
        Some(evaluate(
            &segment.id,
            &segment.definition.condition,
            facts,
            now,
        ))
    }

    /// Re-evaluates `segments` (in the order [`Affected::in_order`] gives) for one user, updating
    /// `memberships` (the ids of the segments the user belongs to) as it goes, so that a segment that
    /// references another reads its new membership. Returns who entered and exited, and the earliest next
    /// check among the segments evaluated.
    pub fn reevaluate<'i>(
        &self,
        segments: &[&'i IndexedSegment],
        user: (&str, &Map<String, Value>, &UserState),
        memberships: &mut BTreeSet<String>,
        now: Timestamp,
    ) -> Reevaluation<'i> {
        let (user_id, traits, state) = user;
        let mut outcome = Reevaluation::default();
        for segment in segments {
            let facts = UserFacts {
                user_id,
                traits,
                state,
                memberships: &*memberships,
            };
            let evaluation = evaluate(&segment.id, &segment.definition.condition, &facts, now);
            outcome.next_check = match (outcome.next_check, evaluation.next_check) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let was_member = memberships.contains(&segment.id);
            if evaluation.member && !was_member {
                memberships.insert(segment.id.clone());
                outcome.entered.push(&segment.id);
            } else if !evaluation.member && was_member {
                memberships.remove(&segment.id);
                outcome.exited.push(&segment.id);
            }
        }
        outcome
    }

    /// Starts collecting the segments a set of inputs affects.
    pub fn affected(&self) -> Affected<'_> {
        Affected {
            index: self,
            marked: vec![false; self.segments.len()],
        }
    }
}

/// What a re-evaluation changed for one user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reevaluation<'i> {
    pub entered: Vec<&'i str>,
    pub exited: Vec<&'i str>,
    /// The earliest moment one of the evaluated memberships could change with no new input: when the
    /// user is due in the next-expiry index.
    pub next_check: Option<Timestamp>,
}

/// The segments some inputs can affect; add inputs, then take them [`in_order`](Affected::in_order).
#[derive(Debug, Clone)]
pub struct Affected<'i> {
    index: &'i SegmentIndex,
    marked: Vec<bool>,
}

impl<'i> Affected<'i> {
    fn mark(&mut self, positions: Option<&Vec<usize>>) -> &mut Self {
        for &position in positions.into_iter().flatten() {
            self.marked[position] = true;
        }
        self
    }

    /// A track, page or screen call (by its type and name).
    pub fn event(&mut self, kind: EventType, name: &str) -> &mut Self {
        for &(read, position) in self.index.by_event.get(name).into_iter().flatten() {
            if read == kind {
                self.marked[position] = true;
            }
        }
        self
    }

    /// Traits that changed, by their top-level names (the keys of an identify call's `traits`).
    pub fn traits<'t>(&mut self, names: impl IntoIterator<Item = &'t str>) -> &mut Self {
        for name in names {
            self.mark(self.index.by_trait.get(name));
        }
        self
    }

    /// A change of the user's state in a subscription group.
    pub fn subscription(&mut self, group: &str) -> &mut Self {
        self.mark(self.index.by_subscription.get(group))
    }

    /// An engagement with a message (for every target it names).
    pub fn engagement(&mut self, engagement: &EngagementFacts<'_>) -> &mut Self {
        for (target_kind, id) in engagement.targets() {
            for &(kind, read_target, position) in
                self.index.by_engagement.get(id).into_iter().flatten()
            {
                if kind == engagement.kind && read_target == target_kind {
                    self.marked[position] = true;
                }
            }
        }
        self
    }

    /// A change of the user's membership of a manual list.
    pub fn list(&mut self, list: &str) -> &mut Self {
        self.mark(self.index.by_list.get(list))
    }

    /// Every segment whose membership can change as time passes: what a scheduled visit re-evaluates when a
    /// user's next check is due.
    pub fn time_dependent(&mut self) -> &mut Self {
        let segments = &self.index.segments;
        for (position, segment) in segments.iter().enumerate() {
            self.marked[position] |= segment.time_dependent;
        }
        self
    }

    /// One segment, by id (nothing when no segment has it): what a backfill of that segment re-evaluates.
    pub fn segment(&mut self, id: &str) -> &mut Self {
        if let Some(&position) = self.index.positions.get(id) {
            self.marked[position] = true;
        }
        self
    }

    /// Every segment: for a user seen for the first time, who may already belong to segments that read no
    /// input (`everyone`, `randomBucket`, `notPerformed`, `not`…).
    pub fn everything(&mut self) -> &mut Self {
        self.marked.iter_mut().for_each(|marked| *marked = true);
        self
    }

    /// The affected segments and, transitively, every segment that references one, in dependency order.
    pub fn in_order(&self) -> Vec<&'i IndexedSegment> {
        let mut marked = self.marked.clone();
        let mut ordered = Vec::new();
        // Dependents always sit later in the order, so one forward pass closes the set.
        for position in 0..marked.len() {
            if marked[position] {
                for &dependent in &self.index.dependents[position] {
                    marked[dependent] = true;
                }
                ordered.push(&self.index.segments[position]);
            }
        }
        ordered
    }
}

/// Every `segment` reference inside `condition`, with its path.
fn collect_references<'c>(
    condition: &'c Condition,
    path: &str,
    found: &mut Vec<(&'c str, String)>,
) {
    match condition {
        Condition::Segment(target) => found.push((target.as_str(), format!("{path}.segment"))),
        Condition::All(children) | Condition::Any(children) => {
            let key = if matches!(condition, Condition::All(_)) {
                "all"
            } else {
                "any"
            };
            for (index, child) in children.iter().enumerate() {
                collect_references(child, &format!("{path}.{key}[{index}]"), found);
            }
        }
        Condition::Not(child) => collect_references(child, &format!("{path}.not"), found),
        _ => {}
    }
}

/// A depth-first post-order of the segments (referenced before referencing), reporting each cycle once.
fn dependency_order(
    segments: &[(String, SegmentDefinition)],
    references: &[Vec<usize>],
    errors: &mut Vec<DefinitionError>,
) -> Vec<usize> {
    let mut walk = OrderWalk {
        segments,
        references,
        marks: vec![Mark::Unvisited; segments.len()],
        stack: Vec::new(),
        order: Vec::with_capacity(segments.len()),
        reported: HashSet::new(),
        errors,
    };
    for node in 0..segments.len() {
        if walk.marks[node] == Mark::Unvisited {
            walk.visit(node);
        }
    }
    walk.order
}

#[derive(Clone, Copy, PartialEq)]
enum Mark {
    Unvisited,
    InProgress,
    Done,
}

struct OrderWalk<'a> {
    segments: &'a [(String, SegmentDefinition)],
    references: &'a [Vec<usize>],
    marks: Vec<Mark>,
    /// The path of references from the segment the walk started at.
    stack: Vec<usize>,
    order: Vec<usize>,
    /// Segments already named in a cycle error, so a cycle is reported once.
    reported: HashSet<usize>,
    errors: &'a mut Vec<DefinitionError>,
}

impl OrderWalk<'_> {
    fn visit(&mut self, node: usize) {
        self.marks[node] = Mark::InProgress;
        self.stack.push(node);
        for &next in &self.references[node] {
            match self.marks[next] {
                Mark::Unvisited => self.visit(next),
                Mark::InProgress if self.reported.insert(next) => self.report_cycle(next),
                _ => {}
            }
        }
        self.stack.pop();
        self.marks[node] = Mark::Done;
        self.order.push(node);
    }

    /// `closing` is on the stack: the references from it to the top of the stack and back form a cycle.
    fn report_cycle(&mut self, closing: usize) {
        let start = self.stack.iter().position(|&n| n == closing).unwrap_or(0);
        let id = |n: usize| self.segments[n].0.as_str();
        let mut names: Vec<&str> = self.stack[start..].iter().map(|&n| id(n)).collect();
        names.push(id(closing));
        self.errors.push(DefinitionError::new(
            format!("segments.{}.condition", id(closing)),
            format!(
                "segments reference each other in a cycle: {}",
                names.join(" → ")
            ),
        ));
    }
}

/// Whether a condition's result can change as time passes with no new input.
fn is_time_dependent(condition: &Condition) -> bool {
    let mut depends = false;
    condition.walk(&mut |condition| {
        depends |= match condition {
            Condition::Trait(filter) => filter.comparison.depends_on_now(),
            Condition::Performed(performed) | Condition::NotPerformed(performed) => {
                performed.within.is_some()
            }
            Condition::Engagement(engagement) => engagement.within.is_some(),
            Condition::LastEvent(last) => {
                last.filters.iter().any(|f| f.comparison.depends_on_now())
            }
            _ => false,
        };
    });
    depends
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn segment(id: &str, condition: serde_json::Value) -> (String, SegmentDefinition) {
        let definition =
            SegmentDefinition::from_value(&json!({"name": id, "condition": condition}))
                .unwrap_or_else(|errors| panic!("invalid test definition {id}: {errors:?}"));
        (id.to_owned(), definition)
    }

    fn ids(segments: Vec<&IndexedSegment>) -> Vec<&str> {
        segments
            .into_iter()
            .map(|segment| segment.id.as_str())
            .collect()
    }

    fn sample() -> SegmentIndex {
        SegmentIndex::build(&[
            segment(
                "vip-buyers",
                json!({"all": [{"segment": "buyers"}, {"list": "vip"}]}),
            ),
            segment(
                "buyers",
                json!({"performed": {"event": "Order Completed", "within": "30d"}}),
            ),
            segment(
                "pro",
                json!({"trait": "plan", "op": "equals", "value": "pro"}),
            ),
            segment(
                "pro-buyers",
                json!({"all": [{"segment": "pro"}, {"segment": "vip-buyers"}]}),
            ),
            segment(
                "pricing-viewers",
                json!({"performed": {"event": "Pricing", "type": "page"}}),
            ),
            segment(
                "newsletter",
                json!({"subscription": {"group": "news", "state": "subscribed"}}),
            ),
            segment(
                "openers",
                json!({"engagement": {"kind": "opened", "journey": "welcome"}}),
            ),
            segment("city", json!({"trait": "address.city", "op": "exists"})),
            segment("everyone", json!({"everyone": true})),
        ])
        .expect("valid index")
    }

    #[test]
    fn an_event_affects_only_segments_that_read_it_and_their_dependents_in_order() {
        let index = sample();
        let affected = ids(index
            .affected()
            .event(EventType::Track, "Order Completed")
            .in_order());
        assert_eq!(affected, vec!["buyers", "vip-buyers", "pro-buyers"]);
        assert!(
            index
                .affected()
                .event(EventType::Track, "Pricing")
                .in_order()
                .is_empty()
        );
        assert_eq!(
            ids(index
                .affected()
                .event(EventType::Page, "Pricing")
                .in_order()),
            vec!["pricing-viewers"]
        );
        assert!(
            index
                .affected()
                .event(EventType::Track, "Unknown")
                .in_order()
                .is_empty()
        );
    }

    #[test]
    fn traits_subscriptions_engagements_and_lists_pick_their_segments() {
        let index = sample();
        assert_eq!(
            ids(index.affected().traits(["plan", "name"]).in_order()),
            vec!["pro", "pro-buyers"]
        );
        assert_eq!(
            ids(index.affected().traits(["address"]).in_order()),
            vec!["city"]
        );
        assert_eq!(
            ids(index.affected().subscription("news").in_order()),
            vec!["newsletter"]
        );
        assert_eq!(
            ids(index.affected().list("vip").in_order()),
            vec!["vip-buyers", "pro-buyers"]
        );
        let opened = EngagementFacts {
            kind: EngagementKind::Opened,
            template: Some("t-1"),
            journey: Some("welcome"),
            broadcast: None,
            at: Timestamp::UNIX_EPOCH,
        };
        assert_eq!(
            ids(index.affected().engagement(&opened).in_order()),
            vec!["openers"]
        );
        let clicked = EngagementFacts {
            kind: EngagementKind::Clicked,
            ..opened
        };
        assert!(index.affected().engagement(&clicked).in_order().is_empty());
        assert_eq!(
            ids(index.affected().time_dependent().in_order()),
            vec!["buyers", "vip-buyers", "pro-buyers"]
        );
        assert_eq!(index.affected().everything().in_order().len(), 9);
    }

    #[test]
    fn every_segment_comes_after_the_segments_it_references() {
        let index = sample();
        let order: Vec<&str> = index
            .segments()
            .iter()
            .map(|segment| segment.id.as_str())
            .collect();
        let position = |id: &str| {
            order
                .iter()
                .position(|candidate| *candidate == id)
                .expect("indexed")
        };
        assert!(position("buyers") < position("vip-buyers"));
        assert!(position("vip-buyers") < position("pro-buyers"));
        assert!(position("pro") < position("pro-buyers"));
    }

    #[test]
    fn a_user_enters_and_exits_as_events_arrive_and_windows_pass() {
        use crate::segments::EventFacts;
        let index = SegmentIndex::build(&[
            segment("loyal", json!({"all": [{"segment": "recent-buyers"}, {"trait": "plan", "op": "equals", "value": "pro"}]})),
            segment("recent-buyers", json!({"performed": {"event": "Order Completed", "within": "7d"}})),
            segment("dormant", json!({"notPerformed": {"event": "Order Completed", "within": "7d"}})),
        ])
        .expect("valid");
        let at = |text: &str| -> Timestamp { text.parse().expect("timestamp") };
        let traits = json!({"plan": "pro"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let mut state = UserState::default();
        let mut memberships = BTreeSet::new();

        // First seen: every segment is evaluated.
        let first = index.affected().everything().in_order();
        let outcome = index.reevaluate(
            &first,
            ("u1", &traits, &state),
            &mut memberships,
            at("2026-03-01T09:00:00Z"),
        );
        assert_eq!(
            (outcome.entered, outcome.next_check),
            (vec!["dormant"], None)
        );

        // An order: only the segments reading it (and "loyal", which references one) are evaluated.
        let ordered = at("2026-03-01T10:00:00Z");
        let properties = Map::new();
        let order = EventFacts {
            kind: EventType::Track,
            name: "Order Completed",
            properties: &properties,
            at: ordered,
        };
        assert!(state.record_event(index.requirements(), &order, ordered));
        let affected = index
            .affected()
            .event(EventType::Track, "Order Completed")
            .in_order();
        assert_eq!(
            ids(affected.clone()),
            vec!["recent-buyers", "loyal", "dormant"]
        );
        let outcome = index.reevaluate(
            &affected,
            ("u1", &traits, &state),
            &mut memberships,
            ordered,
        );
        assert_eq!(outcome.entered, vec!["recent-buyers", "loyal"]);
        assert_eq!(outcome.exited, vec!["dormant"]);
        let due = at("2026-03-08T10:01:00Z");
        assert_eq!(outcome.next_check, Some(due));

        // Nothing changes before the window's edge…
        let timed = index.affected().time_dependent().in_order();
        let early = index.reevaluate(
            &timed,
            ("u1", &traits, &state),
            &mut memberships,
            at("2026-03-08T10:00:59Z"),
        );
        assert!(early.entered.is_empty() && early.exited.is_empty());
        // …and at the edge the user leaves both the window's segment and the one referencing it.
        let outcome = index.reevaluate(&timed, ("u1", &traits, &state), &mut memberships, due);
        assert_eq!(outcome.exited, vec!["recent-buyers", "loyal"]);
        assert_eq!(outcome.entered, vec!["dormant"]);
        assert_eq!(outcome.next_check, None);
        assert_eq!(
            memberships.into_iter().collect::<Vec<_>>(),
            vec!["dormant".to_owned()]
        );
    }

    #[test]
    fn a_reference_cycle_is_rejected_and_named() {
        let errors = SegmentIndex::build(&[
            segment("a", json!({"segment": "b"})),
            segment("b", json!({"any": [{"list": "x"}, {"segment": "a"}]})),
            segment("c", json!({"segment": "c"})),
        ])
        .expect_err("cycles");
        let reasons: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            reasons,
            vec![
                "segments.a.condition: segments reference each other in a cycle: a → b → a",
                "segments.c.condition: segments reference each other in a cycle: c → c",
            ]
        );
    }

    #[test]
    fn unknown_references_and_duplicate_ids_are_rejected_with_their_paths() {
        let errors = SegmentIndex::build(&[
            segment(
                "a",
                json!({"all": [{"list": "x"}, {"not": {"segment": "ghost"}}]}),
            ),
            segment("a", json!({"everyone": true})),
        ])
        .expect_err("invalid");
        let reasons: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            reasons,
            vec![
                "segments.a: the same segment id appears twice",
                "segments.a.condition.all[1].not.segment: references unknown segment \"ghost\"",
            ]
        );
    }

    #[test]
    fn requirements_list_the_counters_and_last_event_properties_to_keep() {
        let index = SegmentIndex::build(&[
            segment("a", json!({"performed": {"event": "Login", "within": "7d"}})),
            segment("b", json!({"performed": {"event": "Login", "within": "30d", "count": {"atLeast": 3}}})),
            segment("c", json!({"lastEvent": {"event": "Plan Changed", "where": [{"property": "plan", "op": "equals", "value": "pro"}]}})),
        ])
        .expect("valid");
        let counters: Vec<_> = index.requirements().counters().collect();
        assert_eq!(counters.len(), 1, "both conditions read the same counter");
        assert_eq!(
            counters[0].1,
            Some(30 * 86_400),
            "kept for the longest window"
        );
        let last: Vec<_> = index.requirements().last_events().collect();
        assert_eq!(last, vec![("track:Plan Changed", vec!["plan"])]);
        assert!(index.requirements().reads_event(EventType::Track, "Login"));
        assert!(!index.requirements().reads_event(EventType::Page, "Login"));
    }
}
