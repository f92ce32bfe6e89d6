//! The table port: DynamoDB's item model, reduced to what Tern uses.
//!
//! Every item lives in one table keyed by the string attributes `pk` and `sk`. One sparse secondary index,
//! `gsi1`, is keyed by `gsi1pk`/`gsi1sk`: an item is in it only when it carries both. An item whose numeric
//! `ttl` attribute (epoch seconds) is in the past is expired: both adapters treat it as absent on reads.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use async_trait::async_trait;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::{PortError, PortResult};

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const GSI1_PK: &str = "gsi1pk";
pub const GSI1_SK: &str = "gsi1sk";
pub const GSI1_NAME: &str = "gsi1";
pub const TTL: &str = "ttl";
/// The attribute that `Condition::VersionMatches` reads.
pub const VERSION: &str = "version";
/// DynamoDB's limits, which the embedded engine enforces too so that code behaves the same on both.
pub const MAX_BATCH_WRITE: usize = 25;
pub const MAX_TRANSACT_ITEMS: usize = 100;

/// A DynamoDB number: kept as its decimal text so that no precision is lost crossing the adapters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Number(String);

impl Number {
    /// Parses a decimal number; `None` when the text is not one.
    pub fn parse(text: &str) -> Option<Self> {
        let trimmed = text.trim();
        if trimmed.parse::<i128>().is_ok() {
            return Some(Self(trimmed.to_string()));
        }
        trimmed
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(|_| Self(trimmed.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn as_i64(&self) -> Option<i64> {
        self.0.parse().ok()
    }

    pub fn as_f64(&self) -> f64 {
        self.0.parse().unwrap_or(f64::NAN)
    }

    /// The sum, exact for integers (as DynamoDB's ADD is), otherwise in floating point.
    pub fn add(&self, other: &Number) -> Number {
        match (self.0.parse::<i128>(), other.0.parse::<i128>()) {
            (Ok(a), Ok(b)) => Number((a + b).to_string()),
            _ => Number::from(self.as_f64() + other.as_f64()),
        }
    }
}

impl From<i64> for Number {
    fn from(value: i64) -> Self {
        Self(value.to_string())
    }
}

impl From<u64> for Number {
    fn from(value: u64) -> Self {
        Self(value.to_string())
    }
}

impl From<f64> for Number {
    fn from(value: f64) -> Self {
        Self(value.to_string())
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One attribute value, serialized as DynamoDB JSON (`{"S":"…"}`, `{"N":"1"}` …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AttrValue {
    S(String),
    N(Number),
    B(#[serde(with = "base64_bytes")] Vec<u8>),
    #[serde(rename = "BOOL")]
    Bool(bool),
    #[serde(rename = "NULL")]
    Null(bool),
    L(Vec<AttrValue>),
    M(BTreeMap<String, AttrValue>),
}

impl AttrValue {
    pub fn as_s(&self) -> Option<&str> {
        match self {
            AttrValue::S(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_n(&self) -> Option<&Number> {
        match self {
            AttrValue::N(n) => Some(n),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        self.as_n().and_then(Number::as_i64)
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            AttrValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn null() -> Self {
        AttrValue::Null(true)
    }
}

impl From<&str> for AttrValue {
    fn from(value: &str) -> Self {
        AttrValue::S(value.to_string())
    }
}

impl From<String> for AttrValue {
    fn from(value: String) -> Self {
        AttrValue::S(value)
    }
}

impl From<i64> for AttrValue {
    fn from(value: i64) -> Self {
        AttrValue::N(value.into())
    }
}

impl From<bool> for AttrValue {
    fn from(value: bool) -> Self {
        AttrValue::Bool(value)
    }
}

mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

/// The primary key of an item.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
        }
    }
}

/// An item: named attributes, always including `pk` and `sk` as strings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Item(pub BTreeMap<String, AttrValue>);

impl Item {
    /// A new item holding only its key.
    pub fn new(key: &Key) -> Self {
        let mut attrs = BTreeMap::new();
        attrs.insert(PK.to_string(), AttrValue::S(key.pk.clone()));
        attrs.insert(SK.to_string(), AttrValue::S(key.sk.clone()));
        Self(attrs)
    }

    /// Builder-style set.
    pub fn with(mut self, name: &str, value: impl Into<AttrValue>) -> Self {
        self.0.insert(name.to_string(), value.into());
        self
    }

    pub fn set(&mut self, name: &str, value: impl Into<AttrValue>) {
        self.0.insert(name.to_string(), value.into());
    }

    pub fn get(&self, name: &str) -> Option<&AttrValue> {
        self.0.get(name)
    }

    pub fn get_s(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(AttrValue::as_s)
    }

    pub fn get_i64(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(AttrValue::as_i64)
    }

    /// The item's key, or `None` when `pk` or `sk` is missing or not a string.
    pub fn key(&self) -> Option<Key> {
        Some(Key::new(self.get_s(PK)?, self.get_s(SK)?))
    }

    /// The key of the item in `gsi1`, when it is indexed there.
    pub fn gsi1_key(&self) -> Option<Key> {
        Some(Key::new(self.get_s(GSI1_PK)?, self.get_s(GSI1_SK)?))
    }

    /// True when the item carries a `ttl` at or before `now_epoch_seconds`.
    pub fn is_expired(&self, now_epoch_seconds: i64) -> bool {
        self.get_i64(TTL)
            .is_some_and(|ttl| ttl <= now_epoch_seconds)
    }
}

/// A condition on the item currently stored under the written key.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// No item exists under the key.
    NotExists,
    /// An item exists under the key.
    Exists,
    /// The item exists and its attribute `name` equals `value`.
    AttrEquals { name: String, value: AttrValue },
    /// Optimistic concurrency on the `version` attribute: it equals `expected`, or, when `expected` is 0,
    /// the item or its `version` attribute is absent.
    VersionMatches(i64),
}

impl Condition {
    pub fn attr_equals(name: &str, value: impl Into<AttrValue>) -> Self {
        Condition::AttrEquals {
            name: name.to_string(),
            value: value.into(),
        }
    }

    /// Evaluates the condition against the stored item; adapters without native conditions use this.
    pub fn holds_for(&self, current: Option<&Item>) -> bool {
        match self {
            Condition::NotExists => current.is_none(),
            Condition::Exists => current.is_some(),
            Condition::AttrEquals { name, value } => {
                current.and_then(|item| item.get(name)) == Some(value)
            }
            Condition::VersionMatches(expected) => {
                let stored = current.and_then(|item| item.get_i64(VERSION));
                match stored {
                    None => *expected == 0,
                    Some(version) => version == *expected,
                }
            }
        }
    }
}

/// An update of one item; applied to an empty item (just the key) when none exists, as DynamoDB does.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Update {
    pub set: Vec<(String, AttrValue)>,
    /// Set only when the attribute is absent (`if_not_exists`), e.g. a creation time.
    pub set_if_absent: Vec<(String, AttrValue)>,
    pub remove: Vec<String>,
    /// Atomic add to a number attribute (absent counts as 0).
    pub add: Vec<(String, Number)>,
}

impl Update {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(mut self, name: &str, value: impl Into<AttrValue>) -> Self {
        self.set.push((name.to_string(), value.into()));
        self
    }

    pub fn set_if_absent(mut self, name: &str, value: impl Into<AttrValue>) -> Self {
        self.set_if_absent.push((name.to_string(), value.into()));
        self
    }

    pub fn remove(mut self, name: &str) -> Self {
        self.remove.push(name.to_string());
        self
    }

    pub fn add(mut self, name: &str, by: impl Into<Number>) -> Self {
        self.add.push((name.to_string(), by.into()));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
            && self.set_if_absent.is_empty()
            && self.remove.is_empty()
            && self.add.is_empty()
    }

    /// Applies the update to `current` (or to a fresh item for `key`); adapters without native updates use this.
    pub fn apply(&self, key: &Key, current: Option<Item>) -> Item {
        let mut item = current.unwrap_or_else(|| Item::new(key));
        for (name, value) in &self.set {
            item.0.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.set_if_absent {
            item.0.entry(name.clone()).or_insert_with(|| value.clone());
        }
        for name in &self.remove {
            item.0.remove(name);
        }
        for (name, by) in &self.add {
            let sum = match item.get(name).and_then(AttrValue::as_n) {
                Some(existing) => existing.add(by),
                None => by.clone(),
            };
            item.0.insert(name.clone(), AttrValue::N(sum));
        }
        item
    }
}

/// Which key a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Index {
    #[default]
    Primary,
    /// The sparse secondary index on `gsi1pk`/`gsi1sk`.
    Gsi1,
}

/// A condition on the sort key of a query (byte-wise string order, as DynamoDB compares strings).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SortCondition {
    #[default]
    All,
    Prefix(String),
    /// Inclusive on both ends.
    Between(String, String),
    GreaterThan(String),
    GreaterOrEqual(String),
    LessThan(String),
    LessOrEqual(String),
}

impl SortCondition {
    pub fn matches(&self, sort_key: &str) -> bool {
        match self {
            SortCondition::All => true,
            SortCondition::Prefix(prefix) => sort_key.starts_with(prefix.as_str()),
            SortCondition::Between(low, high) => {
                low.as_str() <= sort_key && sort_key <= high.as_str()
            }
            SortCondition::GreaterThan(bound) => sort_key > bound.as_str(),
            SortCondition::GreaterOrEqual(bound) => sort_key >= bound.as_str(),
            SortCondition::LessThan(bound) => sort_key < bound.as_str(),
            SortCondition::LessOrEqual(bound) => sort_key <= bound.as_str(),
        }
    }
}

/// An opaque, URL-safe pagination cursor; only the adapter that produced it can read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(pub String);

impl Cursor {
    /// Encodes adapter-specific position data as a cursor.
    pub fn encode<T: Serialize>(position: &T) -> Self {
        let json = serde_json::to_vec(position).expect("cursor positions serialize");
        Self(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
    }

    /// Decodes a cursor made by `encode`; `None` when it was tampered with or made by another adapter.
    pub fn decode<T: for<'de> Deserialize<'de>>(&self) -> Option<T> {
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&self.0)
            .ok()?;
        serde_json::from_slice(&json).ok()
    }
}

/// A query: one partition of the table or of `gsi1`, optionally narrowed on the sort key.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Query {
    pub index: Index,
    pub pk: String,
    pub sort: SortCondition,
    /// Ascending sort-key order when true (the default for `Query::new`).
    pub forward: bool,
    /// The most items a page holds.
    pub limit: Option<u32>,
    pub cursor: Option<Cursor>,
}

impl Query {
    pub fn new(pk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            forward: true,
            ..Self::default()
        }
    }

    pub fn on_gsi1(pk: impl Into<String>) -> Self {
        Self {
            index: Index::Gsi1,
            ..Self::new(pk)
        }
    }

    pub fn sort(mut self, sort: SortCondition) -> Self {
        self.sort = sort;
        self
    }

    pub fn prefix(self, prefix: impl Into<String>) -> Self {
        self.sort(SortCondition::Prefix(prefix.into()))
    }

    pub fn backward(mut self) -> Self {
        self.forward = false;
        self
    }

    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    pub fn after(mut self, cursor: Option<Cursor>) -> Self {
        self.cursor = cursor;
        self
    }
}

/// One page of a query. `cursor` is `Some` when more items may follow.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    pub items: Vec<Item>,
    pub cursor: Option<Cursor>,
}

/// One write of a batch (unconditional, as in DynamoDB's BatchWriteItem).
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    Put(Item),
    Delete(Key),
}

/// One operation of a transactional write. Either all apply or none does.
#[derive(Debug, Clone, PartialEq)]
pub enum TransactOp {
    Put {
        item: Item,
        condition: Option<Condition>,
    },
    Update {
        key: Key,
        update: Update,
        condition: Option<Condition>,
    },
    Delete {
        key: Key,
        condition: Option<Condition>,
    },
    /// Only checks a condition on another item.
    Check { key: Key, condition: Condition },
}

impl TransactOp {
    pub fn key(&self) -> Option<Key> {
        match self {
            TransactOp::Put { item, .. } => item.key(),
            TransactOp::Update { key, .. }
            | TransactOp::Delete { key, .. }
            | TransactOp::Check { key, .. } => Some(key.clone()),
        }
    }

    pub fn condition(&self) -> Option<&Condition> {
        match self {
            TransactOp::Put { condition, .. }
            | TransactOp::Update { condition, .. }
            | TransactOp::Delete { condition, .. } => condition.as_ref(),
            TransactOp::Check { condition, .. } => Some(condition),
        }
    }
}

#[async_trait]
pub trait Table: Send + Sync {
    /// The item under `key`, unless absent or expired.
    async fn get(&self, key: &Key) -> PortResult<Option<Item>>;

    /// Several items at once, in no particular order; absent and expired ones are left out.
    async fn batch_get(&self, keys: &[Key]) -> PortResult<Vec<Item>>;

    /// Writes a whole item; `PortError::ConditionFailed` when `condition` does not hold.
    async fn put(&self, item: Item, condition: Option<Condition>) -> PortResult<()>;

    /// Updates (or creates) the item and returns it as stored afterwards.
    async fn update(
        &self,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> PortResult<Item>;

    /// Deletes the item and returns what was stored, if anything.
    async fn delete(&self, key: &Key, condition: Option<Condition>) -> PortResult<Option<Item>>;

    /// One page of a partition.
    async fn query(&self, query: Query) -> PortResult<Page>;

    /// Unconditional puts and deletes, any number; the adapter chunks them to DynamoDB's 25 and retries
    /// what the service leaves unprocessed.
    async fn batch_write(&self, ops: Vec<WriteOp>) -> PortResult<()>;

    /// At most 100 operations applied atomically; `PortError::TransactionCanceled` names the operations
    /// whose condition failed.
    async fn transact_write(&self, ops: Vec<TransactOp>) -> PortResult<()>;
}

/// The item's key, or `PortError::Invalid` when it lacks the string attributes `pk` and `sk`.
pub fn require_key(item: &Item) -> PortResult<Key> {
    item.key()
        .ok_or_else(|| PortError::Invalid(format!("an item needs string attributes {PK} and {SK}")))
}

/// A query's limit, when it has one, is at least 1.
pub fn validate_query_limit(limit: Option<u32>) -> PortResult<()> {
    if limit == Some(0) {
        return Err(PortError::Invalid(
            "a query limit must be at least 1".into(),
        ));
    }
    Ok(())
}

/// Checks what DynamoDB checks before running a transaction, so that both engines refuse the same
/// transactions and the error names the cause: at most [`MAX_TRANSACT_ITEMS`] operations, no empty update
/// (DynamoDB requires an update expression inside a transaction), at most one operation per item.
/// `key_of` gives an operation's key after the engine's own checks of it; the keys are returned in order.
pub fn validate_transaction(
    ops: &[TransactOp],
    mut key_of: impl FnMut(&TransactOp) -> PortResult<Key>,
) -> PortResult<Vec<Key>> {
    if ops.len() > MAX_TRANSACT_ITEMS {
        return Err(PortError::Invalid(format!(
            "a transaction holds at most {MAX_TRANSACT_ITEMS} operations, not {}",
            ops.len()
        )));
    }
    let mut seen = BTreeSet::new();
    ops.iter()
        .map(|op| {
            if matches!(op, TransactOp::Update { update, .. } if update.is_empty()) {
                return Err(PortError::Invalid(
                    "an update inside a transaction must change something".into(),
                ));
            }
            let key = key_of(op)?;
            if !seen.insert(key.clone()) {
                return Err(PortError::Invalid(format!(
                    "a transaction cannot hold two operations on one item ({}, {})",
                    key.pk, key.sk
                )));
            }
            Ok(key)
        })
        .collect()
}

#[cfg(test)]
mod validation_tests {
    use super::*;

    fn key_of(op: &TransactOp) -> PortResult<Key> {
        match op {
            TransactOp::Put { item, .. } => require_key(item),
            other => Ok(other.key().expect("not a put")),
        }
    }

    #[test]
    fn an_item_without_its_key_attributes_is_invalid() {
        assert_eq!(
            require_key(&Item::new(&Key::new("p", "s"))),
            Ok(Key::new("p", "s"))
        );
        assert_eq!(
            require_key(&Item::default().with(PK, "p")),
            Err(PortError::Invalid(
                "an item needs string attributes pk and sk".into()
            ))
        );
    }

    #[test]
    fn a_query_limit_of_zero_is_invalid() {
        assert_eq!(validate_query_limit(None), Ok(()));
        assert_eq!(validate_query_limit(Some(1)), Ok(()));
        assert!(matches!(
            validate_query_limit(Some(0)),
            Err(PortError::Invalid(_))
        ));
    }

    #[test]
    fn transactions_are_checked_before_they_run() {
        let put = |pk: &str| TransactOp::Put {
            item: Item::new(&Key::new(pk, "s")),
            condition: None,
        };
        assert_eq!(
            validate_transaction(&[put("a"), put("b")], key_of),
            Ok(vec![Key::new("a", "s"), Key::new("b", "s")])
        );
        let too_many: Vec<TransactOp> = (0..=MAX_TRANSACT_ITEMS)
            .map(|i| put(&i.to_string()))
            .collect();
        assert!(matches!(
            validate_transaction(&too_many, key_of),
            Err(PortError::Invalid(_))
        ));
        let twice = validate_transaction(&[put("a"), put("a")], key_of);
        assert!(
            matches!(twice, Err(PortError::Invalid(why)) if why.contains("two operations on one item"))
        );
        let empty = TransactOp::Update {
            key: Key::new("a", "s"),
            update: Update::new(),
            condition: None,
        };
        assert!(matches!(
            validate_transaction(&[empty], |_| panic!("the empty update is refused first")),
            Err(PortError::Invalid(why)) if why.contains("must change something")
        ));
    }
}
