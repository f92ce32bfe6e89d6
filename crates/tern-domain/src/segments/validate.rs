//! Reading a definition from its JSON value into the typed model, collecting every error with the path
//! inside the definition where it is (`condition.all[1].performed.within`) and the reason.

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::definition::{
    Comparison, Condition, CountRule, CounterKey, DateBound, DefinitionError, Duration,
    EngagementCondition, EngagementKind, EngagementTarget, EventType, LastEventCondition,
    MAX_DEPTH, PerformedCondition, PropertyFilter, PropertyPath, RandomBucket, SegmentDefinition,
    SubscriptionCondition, SubscriptionState, TargetKind,
};

const MAX_NAME_CHARS: usize = 200;

/// The keys that name a condition's kind. A trait test is recognised by its `trait` key.
const KIND_KEYS: [&str; 13] = [
    "all",
    "any",
    "not",
    "everyone",
    "trait",
    "performed",
    "notPerformed",
    "lastEvent",
    "subscription",
    "engagement",
    "list",
    "randomBucket",
    "segment",
];

pub(crate) fn parse_definition(value: &Value) -> Result<SegmentDefinition, Vec<DefinitionError>> {
    let mut reader = Reader::default();
    let definition = reader.definition(value);
    match definition {
        Some(definition) if reader.errors.is_empty() => Ok(definition),
        _ => Err(reader.errors),
    }
}

/// Whether `text` is a date a `before` / `after` accepts: an RFC 3339 date-time, a date-time without offset
/// (read as UTC), or a date (midnight UTC).
pub fn parse_instant(text: &str) -> Option<Timestamp> {
    if let Ok(instant) = text.parse::<Timestamp>() {
        return Some(instant);
    }
    if let Ok(datetime) = text.parse::<jiff::civil::DateTime>() {
        return datetime
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp());
    }
    None
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[derive(Default)]
struct Reader {
    errors: Vec<DefinitionError>,
}

impl Reader {
    fn error(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(DefinitionError::new(path, reason));
    }

    fn definition(&mut self, value: &Value) -> Option<SegmentDefinition> {
        let Some(object) = value.as_object() else {
            self.error(
                "",
                format!(
                    "a segment definition must be an object, not {}",
                    describe(value)
                ),
            );
            return None;
        };
        self.no_unknown_keys(object, "", &["name", "description", "condition"]);
        let name = self.required_text(object, "", "name");
        if let Some(name) = &name
            && name.chars().count() > MAX_NAME_CHARS
        {
            self.error(
                "name",
                format!("must be at most {MAX_NAME_CHARS} characters"),
            );
        }
        let description = match object.get("description") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(other) => {
                self.error(
                    "description",
                    format!("must be a string, not {}", describe(other)),
                );
                None
            }
        };
        let condition = match object.get("condition") {
            Some(condition) => self.condition(condition, "condition", 1),
            None => {
                self.error("condition", "is required");
                None
            }
        };
        Some(SegmentDefinition {
            name: name?,
            description,
            condition: condition?,
        })
    }

    fn no_unknown_keys(&mut self, object: &Map<String, Value>, path: &str, known: &[&str]) {
        for key in object.keys() {
            if !known.contains(&key.as_str()) {
                self.error(
                    child(path, key),
                    format!("unknown field; expected one of: {}", known.join(", ")),
                );
            }
        }
    }

    /// A required, non-empty string field.
    fn required_text(
        &mut self,
        object: &Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Option<String> {
        let path = child(path, key);
        match object.get(key) {
            None => self.error(path, "is required"),
            Some(Value::String(text)) if text.trim().is_empty() => {
                self.error(path, "must not be empty")
            }
            Some(Value::String(text)) => return Some(text.clone()),
            Some(other) => self.error(path, format!("must be a string, not {}", describe(other))),
        }
        None
    }

    fn optional_duration(
        &mut self,
        object: &Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Result<Option<Duration>, ()> {
        match object.get(key) {
            None => Ok(None),
            Some(value) => self.duration(value, &child(path, key)).map(Some).ok_or(()),
        }
    }

    fn duration(&mut self, value: &Value, path: &str) -> Option<Duration> {
        let Value::String(text) = value else {
            self.error(
                path,
                format!("must be a duration like \"30d\", not {}", describe(value)),
            );
            return None;
        };
        Duration::parse(text)
            .map_err(|reason| self.error(path, reason))
            .ok()
    }

    fn condition(&mut self, value: &Value, path: &str, depth: usize) -> Option<Condition> {
        if depth > MAX_DEPTH {
            self.error(
                path,
                format!("conditions nest deeper than {MAX_DEPTH} levels"),
            );
            return None;
        }
        let Some(object) = value.as_object() else {
            self.error(
                path,
                format!("a condition must be an object, not {}", describe(value)),
            );
            return None;
        };
        let kinds: Vec<&str> = KIND_KEYS
            .into_iter()
            .filter(|key| object.contains_key(*key))
            .collect();
        let kind = match kinds.as_slice() {
            [kind] => *kind,
            [] => {
                self.error(
                    path,
                    format!(
                        "unknown condition; expected one of: {}",
                        KIND_KEYS.join(", ")
                    ),
                );
                return None;
            }
            several => {
                self.error(
                    path,
                    format!(
                        "a condition has exactly one kind, found: {}; combine them with all or any",
                        several.join(", ")
                    ),
                );
                return None;
            }
        };
        if kind == "trait" {
            self.no_unknown_keys(object, path, &["trait", "op", "value"]);
            return self
                .filter(object, path, "trait", true)
                .map(Condition::Trait);
        }
        self.no_unknown_keys(object, path, &[kind]);
        let inner = &object[kind];
        let inner_path = child(path, kind);
        match kind {
            "all" => self.children(inner, &inner_path, depth).map(Condition::All),
            "any" => self.children(inner, &inner_path, depth).map(Condition::Any),
            "not" => self
                .condition(inner, &inner_path, depth + 1)
                .map(|child| Condition::Not(Box::new(child))),
            "everyone" => {
                if inner != &Value::Bool(true) {
                    self.error(inner_path, "must be true");
                    return None;
                }
                Some(Condition::Everyone)
            }
            "performed" => self
                .performed(inner, &inner_path, true)
                .map(Condition::Performed),
            "notPerformed" => self
                .performed(inner, &inner_path, false)
                .map(Condition::NotPerformed),
            "lastEvent" => self
                .last_event(inner, &inner_path)
                .map(Condition::LastEvent),
            "subscription" => self
                .subscription(inner, &inner_path)
                .map(Condition::Subscription),
            "engagement" => self
                .engagement(inner, &inner_path)
                .map(Condition::Engagement),
            "list" => self
                .identifier(inner, &inner_path, "a list id")
                .map(Condition::List),
            "segment" => self
                .identifier(inner, &inner_path, "a segment id")
                .map(Condition::Segment),
            "randomBucket" => self
                .random_bucket(inner, &inner_path)
                .map(Condition::RandomBucket),
            _ => None,
        }
    }

    fn children(&mut self, value: &Value, path: &str, depth: usize) -> Option<Vec<Condition>> {
        let Some(items) = value.as_array() else {
            self.error(
                path,
                format!("must be a list of conditions, not {}", describe(value)),
            );
            return None;
        };
        if items.is_empty() {
            self.error(path, "must hold at least one condition");
            return None;
        }
        let parsed: Vec<Option<Condition>> = items
            .iter()
            .enumerate()
            .map(|(index, item)| self.condition(item, &format!("{path}[{index}]"), depth + 1))
            .collect();
        parsed.into_iter().collect()
    }

    fn identifier(&mut self, value: &Value, path: &str, what: &str) -> Option<String> {
        match value {
            Value::String(text) if !text.trim().is_empty() => Some(text.clone()),
            Value::String(_) => {
                self.error(path, "must not be empty");
                None
            }
            other => {
                self.error(
                    path,
                    format!("must be {what} (a string), not {}", describe(other)),
                );
                None
            }
        }
    }

    fn object<'v>(&mut self, value: &'v Value, path: &str) -> Option<&'v Map<String, Value>> {
        let object = value.as_object();
        if object.is_none() {
            self.error(path, format!("must be an object, not {}", describe(value)));
        }
        object
    }

    /// A trait test or a `where` filter. `allow_relative` is false where the filter is checked once, when
    /// the event is recorded, so that a date relative to now would be frozen at that moment.
    fn filter(
        &mut self,
        object: &Map<String, Value>,
        path: &str,
        path_key: &str,
        allow_relative: bool,
    ) -> Option<PropertyFilter> {
        let property = self.required_text(object, path, path_key);
        let property = property.and_then(|text| {
            let parsed = PropertyPath::parse(&text);
            if parsed.is_none() {
                self.error(
                    child(path, path_key),
                    "a path is names joined by dots, with no empty name",
                );
            }
            parsed
        });
        let op = self.required_text(object, path, "op");
        let comparison =
            op.and_then(|op| self.comparison(&op, object.get("value"), path, allow_relative));
        Some(PropertyFilter {
            path: property?,
            comparison: comparison?,
        })
    }

    fn comparison(
        &mut self,
        op: &str,
        value: Option<&Value>,
        path: &str,
        allow_relative: bool,
    ) -> Option<Comparison> {
        let value_path = child(path, "value");
        if !Comparison::OPS.contains(&op) {
            self.error(
                child(path, "op"),
                format!(
                    "unknown op \"{op}\"; expected one of: {}",
                    Comparison::OPS.join(", ")
                ),
            );
            return None;
        }
        if matches!(op, "exists" | "notExists") {
            if value.is_some() {
                self.error(value_path, format!("{op} takes no value"));
                return None;
            }
            return Some(if op == "exists" {
                Comparison::Exists
            } else {
                Comparison::NotExists
            });
        }
        let Some(value) = value else {
            self.error(value_path, format!("is required with op {op}"));
            return None;
        };
        match op {
            "equals" | "notEquals" => {
                if !is_scalar(value) {
                    self.error(value_path, format!("{op} compares with a string, number, boolean or null, not {}; use in for a list", describe(value)));
                    return None;
                }
                Some(if op == "equals" {
                    Comparison::Equals(value.clone())
                } else {
                    Comparison::NotEquals(value.clone())
                })
            }
            "gt" | "gte" | "lt" | "lte" => {
                let Value::Number(number) = value else {
                    self.error(
                        value_path,
                        format!("{op} compares with a number, not {}", describe(value)),
                    );
                    return None;
                };
                let number = number.clone();
                Some(match op {
                    "gt" => Comparison::Gt(number),
                    "gte" => Comparison::Gte(number),
                    "lt" => Comparison::Lt(number),
                    _ => Comparison::Lte(number),
                })
            }
            "contains" | "startsWith" => match value {
                Value::String(text) if !text.is_empty() => Some(if op == "contains" {
                    Comparison::Contains(text.clone())
                } else {
                    Comparison::StartsWith(text.clone())
                }),
                other => {
                    self.error(
                        value_path,
                        format!("{op} takes a non-empty string, not {}", describe(other)),
                    );
                    None
                }
            },
            "in" => self.in_list(value, &value_path).map(Comparison::In),
            "before" | "after" => {
                let bound = self.date_bound(value, &value_path, allow_relative)?;
                Some(if op == "before" {
                    Comparison::Before(bound)
                } else {
                    Comparison::After(bound)
                })
            }
            _ => {
                if !allow_relative {
                    self.error(value_path, "withinLast cannot be used in an event filter, which is checked once when the event is recorded; use within on the condition");
                    return None;
                }
                self.duration(value, &value_path)
                    .map(Comparison::WithinLast)
            }
        }
    }

    fn in_list(&mut self, value: &Value, path: &str) -> Option<Vec<Value>> {
        let Some(items) = value.as_array() else {
            self.error(path, format!("in takes a list, not {}", describe(value)));
            return None;
        };
        if items.is_empty() {
            self.error(path, "must hold at least one value");
            return None;
        }
        let mut valid = true;
        for (index, item) in items.iter().enumerate() {
            if !is_scalar(item) {
                self.error(
                    format!("{path}[{index}]"),
                    format!(
                        "must be a string, number, boolean or null, not {}",
                        describe(item)
                    ),
                );
                valid = false;
            }
        }
        valid.then(|| items.clone())
    }

    fn date_bound(&mut self, value: &Value, path: &str, allow_relative: bool) -> Option<DateBound> {
        let Value::String(text) = value else {
            self.error(path, format!("must be a date (\"2026-01-31\"), a date-time or a duration ago (\"30d\"), not {}", describe(value)));
            return None;
        };
        if let Some(instant) = parse_instant(text) {
            return Some(DateBound::At {
                instant,
                text: text.clone(),
            });
        }
        match Duration::parse(text) {
            Ok(_) if !allow_relative => {
                self.error(path, "a date relative to now cannot be used in an event filter, which is checked once when the event is recorded; use within on the condition");
                None
            }
            Ok(duration) => Some(DateBound::Ago(duration)),
            Err(_) => {
                self.error(path, format!("\"{text}\" is neither a date (\"2026-01-31\"), a date-time (\"2026-01-31T12:00:00Z\") nor a duration ago (\"30d\")"));
                None
            }
        }
    }

    fn event_type(&mut self, object: &Map<String, Value>, path: &str) -> Option<EventType> {
        match object.get("type") {
            None => Some(EventType::Track),
            Some(Value::String(text)) => {
                let kind = EventType::parse(text);
                if kind.is_none() {
                    self.error(
                        child(path, "type"),
                        format!("unknown event type \"{text}\"; expected track, page or screen"),
                    );
                }
                kind
            }
            Some(other) => {
                self.error(
                    child(path, "type"),
                    format!("must be track, page or screen, not {}", describe(other)),
                );
                None
            }
        }
    }

    fn filters(
        &mut self,
        object: &Map<String, Value>,
        path: &str,
        allow_relative: bool,
    ) -> Option<Vec<PropertyFilter>> {
        let Some(value) = object.get("where") else {
            return Some(Vec::new());
        };
        let path = child(path, "where");
        let Some(items) = value.as_array() else {
            self.error(
                path,
                format!(
                    "must be a list of property filters, not {}",
                    describe(value)
                ),
            );
            return None;
        };
        let parsed: Vec<Option<PropertyFilter>> = items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let item_path = format!("{path}[{index}]");
                let object = self.object(item, &item_path)?;
                self.no_unknown_keys(object, &item_path, &["property", "op", "value"]);
                self.filter(object, &item_path, "property", allow_relative)
            })
            .collect();
        parsed.into_iter().collect()
    }

    fn count(&mut self, object: &Map<String, Value>, path: &str) -> Option<CountRule> {
        let Some(value) = object.get("count") else {
            return Some(CountRule::AtLeast(1));
        };
        let path = child(path, "count");
        let object = self.object(value, &path)?;
        let rules = ["atLeast", "atMost", "exactly"];
        self.no_unknown_keys(object, &path, &rules);
        let present: Vec<&str> = rules
            .into_iter()
            .filter(|rule| object.contains_key(*rule))
            .collect();
        let [rule] = present.as_slice() else {
            self.error(path, "must hold exactly one of atLeast, atMost, exactly");
            return None;
        };
        let rule_path = child(&path, rule);
        let Some(bound) = object[*rule].as_u64() else {
            self.error(rule_path, "must be a whole number, zero or more");
            return None;
        };
        match *rule {
            "atLeast" if bound == 0 => {
                self.error(rule_path, "atLeast 0 is always true; use 1 or more");
                None
            }
            "atLeast" => Some(CountRule::AtLeast(bound)),
            "atMost" => Some(CountRule::AtMost(bound)),
            _ => Some(CountRule::Exactly(bound)),
        }
    }

    fn performed(
        &mut self,
        value: &Value,
        path: &str,
        positive: bool,
    ) -> Option<PerformedCondition> {
        let object = self.object(value, path)?;
        let known: &[&str] = if positive {
            &["event", "type", "where", "count", "within"]
        } else {
            &["event", "type", "where", "within"]
        };
        self.no_unknown_keys(object, path, known);
        let event = self.required_text(object, path, "event");
        let kind = self.event_type(object, path);
        let filters = self.filters(object, path, false);
        let count = if positive {
            self.count(object, path)
        } else {
            Some(CountRule::Exactly(0))
        };
        let within = self.optional_duration(object, path, "within").ok()?;
        let (event, kind, filters, count) = (event?, kind?, filters?, count?);
        let key = CounterKey::for_events(kind, &event, &filters);
        Some(PerformedCondition {
            event,
            kind,
            filters,
            count,
            within,
            key,
        })
    }

    fn last_event(&mut self, value: &Value, path: &str) -> Option<LastEventCondition> {
        let object = self.object(value, path)?;
        self.no_unknown_keys(object, path, &["event", "type", "where"]);
        let event = self.required_text(object, path, "event");
        let kind = self.event_type(object, path);
        let filters = self.filters(object, path, true);
        let (event, kind, filters) = (event?, kind?, filters?);
        let key = LastEventCondition::state_key(kind, &event);
        Some(LastEventCondition {
            event,
            kind,
            filters,
            key,
        })
    }

    fn subscription(&mut self, value: &Value, path: &str) -> Option<SubscriptionCondition> {
        let object = self.object(value, path)?;
        self.no_unknown_keys(object, path, &["group", "state"]);
        let group = self.required_text(object, path, "group");
        let state = self.required_text(object, path, "state").and_then(|text| {
            let state = SubscriptionState::parse(&text);
            if state.is_none() {
                self.error(
                    child(path, "state"),
                    format!("unknown state \"{text}\"; expected subscribed or unsubscribed"),
                );
            }
            state
        });
        Some(SubscriptionCondition {
            group: group?,
            state: state?,
        })
    }

    fn engagement(&mut self, value: &Value, path: &str) -> Option<EngagementCondition> {
        let object = self.object(value, path)?;
        self.no_unknown_keys(
            object,
            path,
            &[
                "kind",
                "template",
                "journey",
                "broadcast",
                "within",
                "count",
            ],
        );
        let kind = self.required_text(object, path, "kind").and_then(|text| {
            let kind = EngagementKind::parse(&text);
            if kind.is_none() {
                self.error(child(path, "kind"), format!("unknown engagement \"{text}\"; expected received, opened, clicked, bounced or unsubscribed"));
            }
            kind
        });
        let targets: Vec<TargetKind> = TargetKind::ALL
            .into_iter()
            .filter(|target| object.contains_key(target.as_str()))
            .collect();
        let target = match targets.as_slice() {
            [target] => self
                .identifier(
                    &object[target.as_str()],
                    &child(path, target.as_str()),
                    "an id",
                )
                .map(|id| EngagementTarget { kind: *target, id }),
            [] => {
                self.error(path, "must name one of template, journey or broadcast");
                None
            }
            _ => {
                self.error(path, "must name only one of template, journey or broadcast");
                None
            }
        };
        let count = self.count(object, path);
        let within = self.optional_duration(object, path, "within").ok()?;
        let (kind, target, count) = (kind?, target?, count?);
        let key = CounterKey::for_engagement(kind, &target);
        Some(EngagementCondition {
            kind,
            target,
            count,
            within,
            key,
        })
    }

    fn random_bucket(&mut self, value: &Value, path: &str) -> Option<RandomBucket> {
        let object = self.object(value, path)?;
        self.no_unknown_keys(object, path, &["percent", "seed"]);
        let percent_path = child(path, "percent");
        let percent = match object.get("percent") {
            Some(Value::Number(number)) => match number.as_f64() {
                Some(share) if (0.0..=100.0).contains(&share) => Some((number.clone(), share)),
                _ => {
                    self.error(percent_path, "must be between 0 and 100");
                    None
                }
            },
            Some(other) => {
                self.error(
                    percent_path,
                    format!(
                        "must be a number between 0 and 100, not {}",
                        describe(other)
                    ),
                );
                None
            }
            None => {
                self.error(percent_path, "is required");
                None
            }
        };
        let seed = match object.get("seed") {
            None => Some(None),
            Some(seed) => self
                .identifier(seed, &child(path, "seed"), "a string")
                .map(Some),
        };
        let (percent, share) = percent?;
        Some(RandomBucket {
            percent,
            seed: seed?,
            basis_points: (share * 100.0).round() as u64,
        })
    }
}

fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors_of(definition: Value) -> Vec<String> {
        match SegmentDefinition::from_value(&definition) {
            Ok(parsed) => panic!("expected errors, parsed {parsed:?}"),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    /// One example of every condition kind.
    fn every_kind() -> Value {
        json!({
            "name": "Every kind",
            "description": "One of each",
            "condition": {"any": [
                {"everyone": true},
                {"not": {"list": "blocked"}},
                {"trait": "plan", "op": "in", "value": ["pro", "team"]},
                {"trait": "signedUpAt", "op": "before", "value": "30d"},
                {"trait": "renewsAt", "op": "after", "value": "2026-01-01"},
                {"trait": "seenAt", "op": "withinLast", "value": "12h"},
                {"trait": "email", "op": "exists"},
                {"performed": {"event": "Order Completed", "where": [{"property": "total", "op": "gt", "value": 50}], "count": {"atLeast": 2}, "within": "30d"}},
                {"performed": {"event": "Pricing", "type": "page", "count": {"exactly": 1}}},
                {"notPerformed": {"event": "Login", "within": "2w"}},
                {"lastEvent": {"event": "Plan Changed", "where": [{"property": "plan", "op": "equals", "value": "pro"}]}},
                {"subscription": {"group": "newsletter", "state": "unsubscribed"}},
                {"engagement": {"kind": "clicked", "broadcast": "spring-sale", "within": "15m", "count": {"atMost": 3}}},
                {"randomBucket": {"percent": 12.5, "seed": "test-a"}},
                {"segment": "active-users"}
            ]}
        })
    }

    #[test]
    fn every_condition_kind_parses_and_round_trips() {
        let definition = SegmentDefinition::from_value(&every_kind()).expect("valid");
        let Condition::Any(children) = &definition.condition else {
            panic!("any at the top")
        };
        assert_eq!(children.len(), 15);
        assert_eq!(definition.to_value(), every_kind());
        let reread =
            SegmentDefinition::from_json(&serde_json::to_string(&definition).expect("serializes"));
        assert_eq!(reread, Ok(definition));
    }

    #[test]
    fn yaml_reads_the_same_language() {
        let yaml = r#"
name: Recent buyers
condition:
  all:
    - trait: plan
      op: equals
      value: pro
    - performed:
        event: Order Completed
        where:
          - property: total
            op: gte
            value: 50
        within: 30d
"#;
        let from_yaml = SegmentDefinition::from_yaml(yaml).expect("valid YAML");
        let from_json = SegmentDefinition::from_value(&json!({
            "name": "Recent buyers",
            "condition": {"all": [
                {"trait": "plan", "op": "equals", "value": "pro"},
                {"performed": {"event": "Order Completed", "where": [{"property": "total", "op": "gte", "value": 50}], "within": "30d"}}
            ]}
        }));
        assert_eq!(Ok(from_yaml), from_json);
    }

    #[test]
    fn syntax_errors_say_where_the_text_breaks() {
        let errors = SegmentDefinition::from_json("{\"name\": \"x\",\n \"condition\": }")
            .expect_err("broken");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "");
        assert!(
            errors[0].reason.contains("line 2 column"),
            "{}",
            errors[0].reason
        );
        let errors = SegmentDefinition::from_yaml("name: [unclosed").expect_err("broken");
        assert!(
            errors[0].reason.starts_with("invalid YAML"),
            "{}",
            errors[0].reason
        );
    }

    #[test]
    fn every_error_is_reported_with_its_path() {
        let errors = errors_of(json!({
            "name": "",
            "colour": "red",
            "condition": {"all": [
                {"trait": "plan", "op": "resembles", "value": "pro"},
                {"performed": {"event": "Login", "within": "30 days", "count": {"atLeast": 0}}},
                {"any": []},
                {"engagement": {"kind": "opened", "template": "t", "journey": "j"}},
                {"randomBucket": {"percent": 120}},
                {"trait": "age", "op": "gt", "value": "18"},
                {"notPerformed": {"event": "Login", "count": {"atLeast": 1}}},
                {"performed": {"event": "Order", "where": [{"property": "at", "op": "after", "value": "7d"}]}}
            ]}
        }));
        assert_eq!(
            errors,
            vec![
                "colour: unknown field; expected one of: name, description, condition",
                "name: must not be empty",
                "condition.all[0].op: unknown op \"resembles\"; expected one of: equals, notEquals, exists, notExists, gt, gte, lt, lte, contains, startsWith, in, before, after, withinLast",
                "condition.all[1].performed.count.atLeast: atLeast 0 is always true; use 1 or more",
                "condition.all[1].performed.within: \"30 days\" is not a duration: a duration is a whole number and a unit m, h, d or w, like \"30d\"",
                "condition.all[2].any: must hold at least one condition",
                "condition.all[3].engagement: must name only one of template, journey or broadcast",
                "condition.all[4].randomBucket.percent: must be between 0 and 100",
                "condition.all[5].value: gt compares with a number, not a string",
                "condition.all[6].notPerformed.count: unknown field; expected one of: event, type, where, within",
                "condition.all[7].performed.where[0].value: a date relative to now cannot be used in an event filter, which is checked once when the event is recorded; use within on the condition",
            ]
        );
    }

    #[test]
    fn condition_shapes_are_checked() {
        assert_eq!(
            errors_of(json!({"name": "x", "condition": {"list": "a", "segment": "b"}})),
            vec![
                "condition: a condition has exactly one kind, found: list, segment; combine them with all or any"
            ]
        );
        assert_eq!(
            errors_of(json!({"name": "x", "condition": {"performed": {"type": "click"}}})),
            vec![
                "condition.performed.event: is required",
                "condition.performed.type: unknown event type \"click\"; expected track, page or screen",
            ]
        );
        assert_eq!(
            errors_of(
                json!({"name": "x", "condition": {"trait": "a..b", "op": "exists", "value": 1}})
            ),
            vec![
                "condition.trait: a path is names joined by dots, with no empty name",
                "condition.value: exists takes no value",
            ]
        );
        assert_eq!(
            errors_of(
                json!({"name": "x", "condition": {"trait": "tags", "op": "in", "value": ["a", {"b": 1}]}})
            ),
            vec!["condition.value[1]: must be a string, number, boolean or null, not an object"]
        );
        assert_eq!(
            errors_of(json!({"name": "x", "condition": {"engagement": {"kind": "forwarded"}}})),
            vec![
                "condition.engagement.kind: unknown engagement \"forwarded\"; expected received, opened, clicked, bounced or unsubscribed",
                "condition.engagement: must name one of template, journey or broadcast",
            ]
        );
        assert_eq!(
            errors_of(
                json!({"name": "x", "condition": {"subscription": {"group": "news", "state": "maybe"}}})
            ),
            vec![
                "condition.subscription.state: unknown state \"maybe\"; expected subscribed or unsubscribed"
            ]
        );
        assert_eq!(
            errors_of(json!({"name": "x", "condition": {"everyone": false}})),
            vec!["condition.everyone: must be true"]
        );
        assert_eq!(
            errors_of(json!({"name": "x"})),
            vec!["condition: is required"]
        );
        assert_eq!(
            errors_of(json!(["x"])),
            vec!["a segment definition must be an object, not a list"]
        );
    }

    #[test]
    fn durations_are_positive_and_at_most_five_years() {
        assert_eq!(Duration::parse("15m").map(Duration::seconds), Ok(900));
        assert_eq!(
            Duration::parse("2w").map(Duration::seconds),
            Ok(14 * 86_400)
        );
        assert_eq!(
            Duration::parse("1826d").map(|d| d.to_string()),
            Ok("1826d".into())
        );
        for wrong in [
            "0d",
            "1827d",
            "30",
            "d",
            "-1d",
            "1.5h",
            "30D",
            "99999999999w",
        ] {
            assert!(
                Duration::parse(wrong).is_err(),
                "{wrong} should be rejected"
            );
        }
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_rejected() {
        let mut condition = json!({"everyone": true});
        for _ in 0..MAX_DEPTH {
            condition = json!({"not": condition});
        }
        let errors = errors_of(json!({"name": "deep", "condition": condition}));
        let expected_path = format!("condition{}", ".not".repeat(MAX_DEPTH));
        assert_eq!(
            errors,
            vec![format!(
                "{expected_path}: conditions nest deeper than {MAX_DEPTH} levels"
            )]
        );
        let mut allowed = json!({"everyone": true});
        for _ in 0..MAX_DEPTH - 1 {
            allowed = json!({"not": allowed});
        }
        assert!(
            SegmentDefinition::from_value(&json!({"name": "ok", "condition": allowed})).is_ok()
        );
    }

    #[test]
    fn filters_in_any_order_share_one_counter() {
        let parse = |filters: Value| {
            let definition = SegmentDefinition::from_value(&json!({"name": "x", "condition": {"performed": {"event": "Order", "where": filters}}}))
                .expect("valid");
            match definition.condition {
                Condition::Performed(performed) => performed.key,
                other => panic!("{other:?}"),
            }
        };
        let a = json!({"property": "total", "op": "gt", "value": 5});
        let b = json!({"property": "currency", "op": "equals", "value": "EUR"});
        assert_eq!(parse(json!([a, b])), parse(json!([b, a])));
        assert_ne!(parse(json!([a])), parse(json!([b])));
    }
}
