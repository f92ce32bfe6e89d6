//! The segment definition language: the typed model a definition is parsed into (see `validate.rs` for the
//! parsing and `docs/segments.md` for the language), and its JSON form.
//!
//! Parsing compiles what evaluation needs ahead of time (counter keys, numbers, durations in seconds), so
//! that evaluating a condition allocates nothing.

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Number, Value, json};
use sha2::{Digest, Sha256};

/// The deepest nesting of conditions a definition may have.
pub const MAX_DEPTH: usize = 16;

/// One problem in a definition: where it is (`condition.all[1].performed.within`) and why it is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{reason}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct DefinitionError {
    /// The path inside the definition; empty when the text could not be read at all.
    pub path: String,
    pub reason: String,
}

impl DefinitionError {
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        DefinitionError {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// A saved segment: a name for people, and the condition a user must meet to be a member.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentDefinition {
    pub name: String,
    pub description: Option<String>,
    pub condition: Condition,
}

impl SegmentDefinition {
    /// Parses and validates a definition written in JSON.
    pub fn from_json(text: &str) -> Result<SegmentDefinition, Vec<DefinitionError>> {
        let value: Value = serde_json::from_str(text)
            .map_err(|error| vec![DefinitionError::new("", format!("invalid JSON: {error}"))])?;
        Self::from_value(&value)
    }

    /// Parses and validates a definition written in YAML (the same language, as YAML).
    pub fn from_yaml(text: &str) -> Result<SegmentDefinition, Vec<DefinitionError>> {
        let value: Value = serde_yaml::from_str(text)
            .map_err(|error| vec![DefinitionError::new("", format!("invalid YAML: {error}"))])?;
        Self::from_value(&value)
    }

    /// Validates a definition already read as a JSON value, collecting every error.
    pub fn from_value(value: &Value) -> Result<SegmentDefinition, Vec<DefinitionError>> {
        super::validate::parse_definition(value)
    }

    /// The definition in its JSON form (what `from_value` reads back).
    pub fn to_value(&self) -> Value {
        let mut object = Map::new();
        object.insert("name".into(), Value::String(self.name.clone()));
        if let Some(description) = &self.description {
            object.insert("description".into(), Value::String(description.clone()));
        }
        object.insert("condition".into(), self.condition.to_value());
        Value::Object(object)
    }
}

impl Serialize for SegmentDefinition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SegmentDefinition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        SegmentDefinition::from_value(&value).map_err(|errors| {
            let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
            serde::de::Error::custom(text.join("; "))
        })
    }
}

/// What a user must meet to be a member.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Everyone,
    Trait(PropertyFilter),
    Performed(PerformedCondition),
    NotPerformed(PerformedCondition),
    LastEvent(LastEventCondition),
    Subscription(SubscriptionCondition),
    Engagement(EngagementCondition),
    List(String),
    RandomBucket(RandomBucket),
    Segment(String),
}

impl Condition {
    pub fn to_value(&self) -> Value {
        match self {
            Condition::All(children) => {
                json!({ "all": children.iter().map(Condition::to_value).collect::<Vec<_>>() })
            }
            Condition::Any(children) => {
                json!({ "any": children.iter().map(Condition::to_value).collect::<Vec<_>>() })
            }
            Condition::Not(child) => json!({ "not": child.to_value() }),
            Condition::Everyone => json!({ "everyone": true }),
            Condition::Trait(filter) => filter.to_value("trait"),
            Condition::Performed(performed) => json!({ "performed": performed.to_value(true) }),
            Condition::NotPerformed(performed) => {
                json!({ "notPerformed": performed.to_value(false) })
            }
            Condition::LastEvent(last) => json!({ "lastEvent": last.to_value() }),
            Condition::Subscription(subscription) => json!({ "subscription": {
                "group": subscription.group,
                "state": subscription.state.as_str(),
            }}),
            Condition::Engagement(engagement) => json!({ "engagement": engagement.to_value() }),
            Condition::List(list) => json!({ "list": list }),
            Condition::RandomBucket(bucket) => {
                let mut inner = Map::new();
                inner.insert("percent".into(), Value::Number(bucket.percent.clone()));
                if let Some(seed) = &bucket.seed {
                    inner.insert("seed".into(), Value::String(seed.clone()));
                }
                json!({ "randomBucket": inner })
            }
            Condition::Segment(segment) => json!({ "segment": segment }),
        }
    }

    /// Calls `visit` on this condition and every condition nested in it.
    pub fn walk<'a>(&'a self, visit: &mut impl FnMut(&'a Condition)) {
        visit(self);
        match self {
            Condition::All(children) | Condition::Any(children) => {
                children.iter().for_each(|child| child.walk(visit))
            }
            Condition::Not(child) => child.walk(visit),
            _ => {}
        }
    }
}

/// A dotted path into traits or event properties (`address.city`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyPath {
    text: String,
    parts: Vec<String>,
}

impl PropertyPath {
    /// `None` when the path is empty or has an empty part (`a..b`).
    pub fn parse(text: &str) -> Option<PropertyPath> {
        let parts: Vec<String> = text.split('.').map(str::to_owned).collect();
        if parts.iter().any(String::is_empty) {
            return None;
        }
        Some(PropertyPath {
            text: text.to_owned(),
            parts,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The top-level key the path starts with (the trait name an identify call changes).
    pub fn root(&self) -> &str {
        &self.parts[0]
    }

    /// The value at this path: a key spelled exactly like the whole path first (keys may contain dots),
    /// else the nested objects along the parts.
    pub fn lookup<'v>(&self, object: &'v Map<String, Value>) -> Option<&'v Value> {
        if let Some(value) = object.get(&self.text) {
            return Some(value);
        }
        if self.parts.len() == 1 {
            return None;
        }
        let mut current = object.get(&self.parts[0])?;
        for part in &self.parts[1..] {
            current = current.as_object()?.get(part)?;
        }
        Some(current)
    }
}

/// A test of one trait or property: `{"trait": "plan", "op": "equals", "value": "pro"}` or, inside
/// `where`, `{"property": "total", "op": "gt", "value": 50}`.
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyFilter {
    pub path: PropertyPath,
    pub comparison: Comparison,
}

impl PropertyFilter {
    pub(crate) fn to_value(&self, path_key: &str) -> Value {
        let mut object = Map::new();
        object.insert(
            path_key.into(),
            Value::String(self.path.as_str().to_owned()),
        );
        object.insert("op".into(), Value::String(self.comparison.op_name().into()));
        if let Some(value) = self.comparison.operand() {
            object.insert("value".into(), value);
        }
        Value::Object(object)
    }

    /// A stable text for fingerprints: the same filter always gives the same text.
    fn canonical(&self) -> String {
        let operand = self.comparison.operand().unwrap_or(Value::Null);
        format!(
            "{}\u{1f}{}\u{1f}{}",
            self.path.as_str(),
            self.comparison.op_name(),
            operand
        )
    }
}

/// An operator with its (already checked) operand.
#[derive(Debug, Clone, PartialEq)]
pub enum Comparison {
    Equals(Value),
    NotEquals(Value),
    Exists,
    NotExists,
    Gt(Number),
    Gte(Number),
    Lt(Number),
    Lte(Number),
    Contains(String),
    StartsWith(String),
    In(Vec<Value>),
    Before(DateBound),
    After(DateBound),
    WithinLast(Duration),
}

impl Comparison {
    pub const OPS: [&'static str; 14] = [
        "equals",
        "notEquals",
        "exists",
        "notExists",
        "gt",
        "gte",
        "lt",
        "lte",
        "contains",
        "startsWith",
        "in",
        "before",
        "after",
        "withinLast",
    ];

    pub fn op_name(&self) -> &'static str {
        match self {
            Comparison::Equals(_) => "equals",
            Comparison::NotEquals(_) => "notEquals",
            Comparison::Exists => "exists",
            Comparison::NotExists => "notExists",
            Comparison::Gt(_) => "gt",
            Comparison::Gte(_) => "gte",
            Comparison::Lt(_) => "lt",
            Comparison::Lte(_) => "lte",
            Comparison::Contains(_) => "contains",
            Comparison::StartsWith(_) => "startsWith",
            Comparison::In(_) => "in",
            Comparison::Before(_) => "before",
            Comparison::After(_) => "after",
            Comparison::WithinLast(_) => "withinLast",
        }
    }

    fn operand(&self) -> Option<Value> {
        match self {
            Comparison::Equals(value) | Comparison::NotEquals(value) => Some(value.clone()),
            Comparison::Exists | Comparison::NotExists => None,
            Comparison::Gt(number)
            | Comparison::Gte(number)
            | Comparison::Lt(number)
            | Comparison::Lte(number) => Some(Value::Number(number.clone())),
            Comparison::Contains(text) | Comparison::StartsWith(text) => {
                Some(Value::String(text.clone()))
            }
            Comparison::In(values) => Some(Value::Array(values.clone())),
            Comparison::Before(bound) | Comparison::After(bound) => Some(bound.to_value()),
            Comparison::WithinLast(duration) => Some(Value::String(duration.to_string())),
        }
    }

    /// Whether the result can change as time passes with no new input.
    pub fn depends_on_now(&self) -> bool {
        matches!(
            self,
            Comparison::Before(DateBound::Ago(_))
                | Comparison::After(DateBound::Ago(_))
                | Comparison::WithinLast(_)
        )
    }
}

/// The date a `before` / `after` compares with: a fixed instant, or a duration before now.
#[derive(Debug, Clone, PartialEq)]
pub enum DateBound {
    /// Written as an RFC 3339 date-time (`2026-01-01T00:00:00Z`) or a date (`2026-01-01`, midnight UTC).
    At { instant: Timestamp, text: String },
    /// Written as a duration (`30d`): that long before now.
    Ago(Duration),
}

impl DateBound {
    fn to_value(&self) -> Value {
        match self {
            DateBound::At { text, .. } => Value::String(text.clone()),
            DateBound::Ago(duration) => Value::String(duration.to_string()),
        }
    }
}

/// A positive duration written as a number and a unit: `15m`, `12h`, `30d`, `2w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Duration {
    amount: u32,
    unit: DurationUnit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DurationUnit {
    Minutes,
    Hours,
    Days,
    Weeks,
}

impl DurationUnit {
    fn seconds(self) -> i64 {
        match self {
            DurationUnit::Minutes => 60,
            DurationUnit::Hours => 3_600,
            DurationUnit::Days => 86_400,
            DurationUnit::Weeks => 7 * 86_400,
        }
    }

    fn suffix(self) -> char {
        match self {
            DurationUnit::Minutes => 'm',
            DurationUnit::Hours => 'h',
            DurationUnit::Days => 'd',
            DurationUnit::Weeks => 'w',
        }
    }
}

impl Duration {
    /// The longest duration allowed: five years of days.
    pub const MAX_SECONDS: i64 = 1_826 * 86_400;

    /// Reads `15m`, `12h`, `30d`, `2w`; the reason on error is meant for people.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let usage = "a duration is a whole number and a unit m, h, d or w, like \"30d\"";
        let unit = match text.chars().last() {
            Some('m') => DurationUnit::Minutes,
            Some('h') => DurationUnit::Hours,
            Some('d') => DurationUnit::Days,
            Some('w') => DurationUnit::Weeks,
            _ => return Err(format!("\"{text}\" is not a duration: {usage}")),
        };
        let digits = &text[..text.len() - 1];
        if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(format!("\"{text}\" is not a duration: {usage}"));
        }
        let amount: u32 = digits
            .parse()
            .map_err(|_| format!("\"{text}\" is longer than 5 years"))?;
        if amount == 0 {
            return Err(format!("\"{text}\" must be longer than zero"));
        }
        let duration = Duration { amount, unit };
        if duration.seconds() > Self::MAX_SECONDS {
            return Err(format!("\"{text}\" is longer than 5 years"));
        }
        Ok(duration)
    }

    pub fn seconds(self) -> i64 {
        i64::from(self.amount) * self.unit.seconds()
    }

    pub fn as_signed(self) -> jiff::SignedDuration {
        jiff::SignedDuration::from_secs(self.seconds())
    }
}

impl std::fmt::Display for Duration {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}{}", self.amount, self.unit.suffix())
    }
}

/// The Segment call an event counted by `performed` comes from. `page` and `screen` match their name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    Track,
    Page,
    Screen,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Track => "track",
            EventType::Page => "page",
            EventType::Screen => "screen",
        }
    }

    pub fn parse(text: &str) -> Option<EventType> {
        [EventType::Track, EventType::Page, EventType::Screen]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// How many occurrences a `performed` or `engagement` condition asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountRule {
    AtLeast(u64),
    AtMost(u64),
    Exactly(u64),
}

impl CountRule {
    pub fn accepts(self, count: u64) -> bool {
        match self {
            CountRule::AtLeast(bound) => count >= bound,
            CountRule::AtMost(bound) => count <= bound,
            CountRule::Exactly(bound) => count == bound,
        }
    }

    fn to_value(self) -> Value {
        match self {
            CountRule::AtLeast(bound) => json!({ "atLeast": bound }),
            CountRule::AtMost(bound) => json!({ "atMost": bound }),
            CountRule::Exactly(bound) => json!({ "exactly": bound }),
        }
    }
}

/// A stable fingerprint of what a counter counts (event type, name and property filters; or engagement
/// kind and target): the first 8 bytes of a SHA-256, so it is the same on every machine and release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CounterKey(pub u64);

impl CounterKey {
    fn of(canonical: &str) -> CounterKey {
        let digest = Sha256::digest(canonical.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        CounterKey(u64::from_be_bytes(first))
    }

    /// The counter of events of this type and name that pass every filter (in any order).
    pub fn for_events(kind: EventType, event: &str, filters: &[PropertyFilter]) -> CounterKey {
        let mut parts: Vec<String> = filters.iter().map(PropertyFilter::canonical).collect();
        parts.sort();
        CounterKey::of(&format!(
            "event\u{1e}{}\u{1e}{event}\u{1e}{}",
            kind.as_str(),
            parts.join("\u{1e}")
        ))
    }

    pub fn for_engagement(kind: EngagementKind, target: &EngagementTarget) -> CounterKey {
        CounterKey::of(&format!(
            "engagement\u{1e}{}\u{1e}{}\u{1e}{}",
            kind.as_str(),
            target.kind.as_str(),
            target.id
        ))
    }
}

/// `performed` (and `notPerformed`, which is the same test with a count of exactly zero).
#[derive(Debug, Clone, PartialEq)]
pub struct PerformedCondition {
    pub event: String,
    pub kind: EventType,
    pub filters: Vec<PropertyFilter>,
    pub count: CountRule,
    /// `None`: ever.
    pub within: Option<Duration>,
    pub key: CounterKey,
}

impl PerformedCondition {
    fn to_value(&self, with_count: bool) -> Value {
        let mut object = Map::new();
        object.insert("event".into(), Value::String(self.event.clone()));
        if self.kind != EventType::Track {
            object.insert("type".into(), Value::String(self.kind.as_str().into()));
        }
        if !self.filters.is_empty() {
            let filters = self
                .filters
                .iter()
                .map(|f| f.to_value("property"))
                .collect();
            object.insert("where".into(), Value::Array(filters));
        }
        if with_count && self.count != CountRule::AtLeast(1) {
            object.insert("count".into(), self.count.to_value());
        }
        if let Some(within) = self.within {
            object.insert("within".into(), Value::String(within.to_string()));
        }
        Value::Object(object)
    }
}

/// `lastEvent`: the user's most recent occurrence of an event passes the filters.
#[derive(Debug, Clone, PartialEq)]
pub struct LastEventCondition {
    pub event: String,
    pub kind: EventType,
    pub filters: Vec<PropertyFilter>,
    /// Where the user's state keeps the last occurrence (`track:Plan Changed`).
    pub key: String,
}

impl LastEventCondition {
    pub fn state_key(kind: EventType, event: &str) -> String {
        format!("{}:{event}", kind.as_str())
    }
}

impl LastEventCondition {
    fn to_value(&self) -> Value {
        let mut object = Map::new();
        object.insert("event".into(), Value::String(self.event.clone()));
        if self.kind != EventType::Track {
            object.insert("type".into(), Value::String(self.kind.as_str().into()));
        }
        if !self.filters.is_empty() {
            let filters = self
                .filters
                .iter()
                .map(|f| f.to_value("property"))
                .collect();
            object.insert("where".into(), Value::Array(filters));
        }
        Value::Object(object)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscriptionState {
    Subscribed,
    Unsubscribed,
}

impl SubscriptionState {
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionState::Subscribed => "subscribed",
            SubscriptionState::Unsubscribed => "unsubscribed",
        }
    }

    pub fn parse(text: &str) -> Option<SubscriptionState> {
        match text {
            "subscribed" => Some(SubscriptionState::Subscribed),
            "unsubscribed" => Some(SubscriptionState::Unsubscribed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionCondition {
    pub group: String,
    pub state: SubscriptionState,
}

/// What happened to a message a user was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngagementKind {
    Received,
    Opened,
    Clicked,
    Bounced,
    Unsubscribed,
}

impl EngagementKind {
    pub const ALL: [EngagementKind; 5] = [
        EngagementKind::Received,
        EngagementKind::Opened,
        EngagementKind::Clicked,
        EngagementKind::Bounced,
        EngagementKind::Unsubscribed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EngagementKind::Received => "received",
            EngagementKind::Opened => "opened",
            EngagementKind::Clicked => "clicked",
            EngagementKind::Bounced => "bounced",
            EngagementKind::Unsubscribed => "unsubscribed",
        }
    }

    pub fn parse(text: &str) -> Option<EngagementKind> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// What sent the message an engagement is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetKind {
    Template,
    Journey,
    Broadcast,
}

impl TargetKind {
    pub const ALL: [TargetKind; 3] = [
        TargetKind::Template,
        TargetKind::Journey,
        TargetKind::Broadcast,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Template => "template",
            TargetKind::Journey => "journey",
            TargetKind::Broadcast => "broadcast",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EngagementTarget {
    pub kind: TargetKind,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EngagementCondition {
    pub kind: EngagementKind,
    pub target: EngagementTarget,
    pub count: CountRule,
    pub within: Option<Duration>,
    pub key: CounterKey,
}

impl EngagementCondition {
    fn to_value(&self) -> Value {
        let mut object = Map::new();
        object.insert("kind".into(), Value::String(self.kind.as_str().into()));
        object.insert(
            self.target.kind.as_str().into(),
            Value::String(self.target.id.clone()),
        );
        if self.count != CountRule::AtLeast(1) {
            object.insert("count".into(), self.count.to_value());
        }
        if let Some(within) = self.within {
            object.insert("within".into(), Value::String(within.to_string()));
        }
        Value::Object(object)
    }
}

/// A stable pseudo-random share of users: `percent` in 0..=100 (two decimals count).
#[derive(Debug, Clone, PartialEq)]
pub struct RandomBucket {
    pub percent: Number,
    /// Which users fall in the share; defaults to the segment's id, so that two segments draw different users.
    pub seed: Option<String>,
    /// `percent` in hundredths of a percent (0..=10 000).
    pub(crate) basis_points: u64,
}
