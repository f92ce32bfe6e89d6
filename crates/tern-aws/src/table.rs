//! The AWS table adapter: the table port on one DynamoDB table.
//!
//! Conditions, updates and key conditions become DynamoDB expressions whose attribute names and values
//! always travel as `#n`/`:v` placeholders. DynamoDB keeps an expired item until its TTL sweep (up to days
//! later), so the adapter hides it: reads drop it, conditions treat it as absent, and an update over one
//! first clears it, which keeps this engine's behaviour the same as the embedded one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, DeleteRequest, KeysAndAttributes, Put, PutRequest,
    ReturnValue, TransactWriteItem, WriteRequest,
};
use futures::{StreamExt as _, TryStreamExt as _};
use tern_ports::table::{
    AttrValue, GSI1_NAME, GSI1_PK, GSI1_SK, MAX_BATCH_WRITE, Number, PK, SK, TTL, VERSION,
    require_key, validate_query_limit, validate_transaction,
};
use tern_ports::{
    Condition, Cursor, Index, Item, Key, Page, PortError, PortResult, Query, SortCondition, Table,
    TransactOp, Update, WriteOp,
};

use crate::error::{collapse_whitespace, error_chain, is_throttling, is_unreachable};

/// DynamoDB's limit on keys per BatchGetItem request.
const MAX_BATCH_GET: usize = 100;
/// How many batch requests run at once.
const BATCH_CONCURRENCY: usize = 4;
/// Attempts at a batch before its unprocessed remainder is reported as throttled.
const BATCH_ATTEMPTS: u32 = 8;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Attempts at a write that keeps finding an expired item in its way (each attempt clears it).
const EXPIRED_RETRIES: u32 = 3;

/// The table port on DynamoDB.
#[derive(Clone, Debug)]
pub struct DynamoTable {
    client: Client,
    table_name: String,
    /// Where requests go, for messages when they cannot get there.
    endpoint: String,
}

impl DynamoTable {
    pub fn new(config: &SdkConfig, table_name: impl Into<String>) -> DynamoTable {
        let endpoint = match (config.endpoint_url(), config.region()) {
            (Some(url), _) => url.to_string(),
            (None, Some(region)) => format!("the {region} regional endpoint"),
            (None, None) => "the regional endpoint (no region configured)".to_string(),
        };
        DynamoTable {
            client: Client::new(config),
            table_name: table_name.into(),
            endpoint,
        }
    }

    pub fn table_name(&self) -> &str {
        &self.table_name
    }

    /// Maps an SDK failure to the port error, naming the endpoint or table when they are the problem.
    fn error<E, R>(&self, error: SdkError<E, R>) -> PortError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + 'static,
    {
        if is_unreachable(&error) {
            return PortError::Unavailable(format!(
                "DynamoDB is unreachable at {}: {}",
                self.endpoint,
                error_chain(&error)
            ));
        }
        let message = || collapse_whitespace(error.message().unwrap_or("no message"));
        match error.code() {
            Some("ConditionalCheckFailedException") => PortError::ConditionFailed,
            Some(code)
                if is_throttling(code)
                    || matches!(
                        code,
                        "ProvisionedThroughputExceededException"
                            | "TransactionConflictException"
                            | "TransactionInProgressException"
                    ) =>
            {
                PortError::Throttled(format!("DynamoDB {code}: {}", message()))
            }
            Some("ResourceNotFoundException") => PortError::NotFound(format!(
                "DynamoDB table {} ({})",
                self.table_name,
                message()
            )),
            Some("ValidationException") => {
                PortError::Invalid(format!("DynamoDB refused the request: {}", message()))
            }
            Some(code) => PortError::Other(format!("DynamoDB {code}: {}", message())),
            None => PortError::Other(format!("DynamoDB request failed: {}", error_chain(&error))),
        }
    }

    /// The item stored under `key`, expired or not (a consistent read).
    async fn stored(&self, key: &Key) -> PortResult<Option<Item>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table_name)
            .set_key(Some(key_to_sdk(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        output.item.map(item_from_sdk).transpose()
    }

    /// Deletes the item under `key` if it is expired; true when it was (or had just stopped existing).
    async fn clear_if_expired(&self, key: &Key, now: i64) -> PortResult<bool> {
        let expired = self
            .stored(key)
            .await?
            .is_some_and(|item| item.is_expired(now));
        if !expired {
            return Ok(false);
        }
        let mut expression = Expression::default();
        let condition = expression.expired_at(now);
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table_name)
            .set_key(Some(key_to_sdk(key)))
            .condition_expression(condition)
            .set_expression_attribute_names(expression.names())
            .set_expression_attribute_values(expression.values())
            .send()
            .await
            .map_err(|e| self.error(e));
        match deleted {
            // Someone rewrote the item meanwhile; the caller's retry sees the new one.
            Ok(_) | Err(PortError::ConditionFailed) => Ok(true),
            Err(other) => Err(other),
        }
    }

    async fn update_once(
        &self,
        key: &Key,
        update: &Update,
        condition: Option<&Condition>,
        now: i64,
    ) -> PortResult<Item> {
        let mut expression = Expression::default();
        let update_expression = expression.update(update);
        let condition_expression = expression.write_guard(condition, true, now);
        let output = self
            .client
            .update_item()
            .table_name(&self.table_name)
            .set_key(Some(key_to_sdk(key)))
            .set_update_expression(update_expression)
            .set_condition_expression(condition_expression)
            .set_expression_attribute_names(expression.names())
            .set_expression_attribute_values(expression.values())
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        match output.attributes {
            Some(attributes) if !attributes.is_empty() => item_from_sdk(attributes),
            // DynamoDB returns nothing when the update changed nothing; the item is then just its key.
            _ => Ok(Item::new(key)),
        }
    }

    async fn write_chunk(&self, chunk: Vec<WriteRequest>) -> PortResult<()> {
        self.until_processed("writes to", chunk, |pending| async move {
            let output = self
                .client
                .batch_write_item()
                .request_items(&self.table_name, pending)
                .send()
                .await
                .map_err(|e| self.error(e))?;
            let pending = output
                .unprocessed_items
                .and_then(|mut left| left.remove(&self.table_name))
                .unwrap_or_default();
            Ok((Vec::new(), pending))
        })
        .await
        .map(|_| ())
    }

    async fn get_chunk(&self, keys: Vec<HashMap<String, AttributeValue>>) -> PortResult<Vec<Item>> {
        self.until_processed("reads from", keys, |pending| async move {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(pending))
                .consistent_read(true)
                .build()
                .map_err(|e| PortError::Invalid(format!("batch_get request: {e}")))?;
            let output = self
                .client
                .batch_get_item()
                .request_items(&self.table_name, request)
                .send()
                .await
                .map_err(|e| self.error(e))?;
            let found = output
                .responses
                .and_then(|mut tables| tables.remove(&self.table_name))
                .unwrap_or_default()
                .into_iter()
                .map(item_from_sdk)
                .collect::<PortResult<Vec<_>>>()?;
            let pending = output
                .unprocessed_keys
                .and_then(|mut left| left.remove(&self.table_name))
                .map(|left| left.keys)
                .unwrap_or_default();
            Ok((found, pending))
        })
        .await
    }

    /// Runs a batch request until DynamoDB has processed all of it, backing off between attempts:
    /// `attempt` sends what is pending and returns the items it read and what is left unprocessed. After
    /// [`BATCH_ATTEMPTS`] attempts, what is left is reported as throttled.
    async fn until_processed<T, F, Fut>(
        &self,
        what: &str,
        mut pending: Vec<T>,
        mut attempt: F,
    ) -> PortResult<Vec<Item>>
    where
        F: FnMut(Vec<T>) -> Fut,
        Fut: Future<Output = PortResult<(Vec<Item>, Vec<T>)>>,
    {
        let mut found = Vec::new();
        let mut backoff = FIRST_BACKOFF;
        for number in 1..=BATCH_ATTEMPTS {
            let (read, left) = attempt(pending).await?;
            found.extend(read);
            pending = left;
            if pending.is_empty() {
                return Ok(found);
            }
            if number < BATCH_ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
        Err(PortError::Throttled(format!(
            "DynamoDB left {} {what} {} unprocessed after {BATCH_ATTEMPTS} attempts",
            pending.len(),
            self.table_name
        )))
    }

    /// One attempt at a transaction: `Ok(Err(failed))` when conditions failed at the `failed` indexes.
    async fn transact_once(
        &self,
        ops: &[TransactOp],
        now: i64,
    ) -> PortResult<Result<(), Vec<usize>>> {
        let items = ops
            .iter()
            .map(|op| self.transact_item(op, now))
            .collect::<PortResult<Vec<_>>>()?;
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let error = match result {
            Ok(_) => return Ok(Ok(())),
            Err(error) => error,
        };
        let reasons = match &error {
            SdkError::ServiceError(service) => match service.err() {
                TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                    cancelled.cancellation_reasons().to_vec()
                }
                _ => return Err(self.error(error)),
            },
            _ => return Err(self.error(error)),
        };
        let mut failed = Vec::new();
        for (index, reason) in reasons.iter().enumerate() {
            match reason.code() {
                None | Some("None") => {}
                Some("ConditionalCheckFailed") => failed.push(index),
                Some(
                    code @ ("TransactionConflict"
                    | "ThrottlingError"
                    | "ProvisionedThroughputExceeded"),
                ) => {
                    return Err(PortError::Throttled(format!(
                        "DynamoDB cancelled the transaction: {code}"
                    )));
                }
                Some(code) => {
                    let message = collapse_whitespace(reason.message().unwrap_or("no message"));
                    return Err(PortError::Rejected(format!(
                        "DynamoDB cancelled the transaction at operation {index}: {code}: {message}"
                    )));
                }
            }
        }
        if failed.is_empty() {
            return Err(self.error(error));
        }
        Ok(Err(failed))
    }

    fn transact_item(&self, op: &TransactOp, now: i64) -> PortResult<TransactWriteItem> {
        let mut expression = Expression::default();
        let built = match op {
            TransactOp::Put { item, condition } => {
                let condition = expression.write_guard(condition.as_ref(), false, now);
                let put = Put::builder()
                    .table_name(&self.table_name)
                    .set_item(Some(item_to_sdk(item)))
                    .set_condition_expression(condition)
                    .set_expression_attribute_names(expression.names())
                    .set_expression_attribute_values(expression.values())
                    .build();
                TransactWriteItem::builder().put(put.map_err(build_error)?)
            }
            TransactOp::Update {
                key,
                update,
                condition,
            } => {
                let update_expression = expression.update(update);
                let condition = expression.write_guard(condition.as_ref(), true, now);
                let update = aws_sdk_dynamodb::types::Update::builder()
                    .table_name(&self.table_name)
                    .set_key(Some(key_to_sdk(key)))
                    .set_update_expression(update_expression)
                    .set_condition_expression(condition)
                    .set_expression_attribute_names(expression.names())
                    .set_expression_attribute_values(expression.values())
                    .build();
                TransactWriteItem::builder().update(update.map_err(build_error)?)
            }
            TransactOp::Delete { key, condition } => {
                let condition = expression.write_guard(condition.as_ref(), false, now);
                let delete = Delete::builder()
                    .table_name(&self.table_name)
                    .set_key(Some(key_to_sdk(key)))
                    .set_condition_expression(condition)
                    .set_expression_attribute_names(expression.names())
                    .set_expression_attribute_values(expression.values())
                    .build();
                TransactWriteItem::builder().delete(delete.map_err(build_error)?)
            }
            TransactOp::Check { key, condition } => {
                let condition = expression.condition(condition, now);
                let check = ConditionCheck::builder()
                    .table_name(&self.table_name)
                    .set_key(Some(key_to_sdk(key)))
                    .condition_expression(condition)
                    .set_expression_attribute_names(expression.names())
                    .set_expression_attribute_values(expression.values())
                    .build();
                TransactWriteItem::builder().condition_check(check.map_err(build_error)?)
            }
        };
        Ok(built.build())
    }
}

#[async_trait]
impl Table for DynamoTable {
    async fn get(&self, key: &Key) -> PortResult<Option<Item>> {
        let stored = self.stored(key).await?;
        let now = now_epoch();
        Ok(stored.filter(|item| !item.is_expired(now)))
    }

    async fn batch_get(&self, keys: &[Key]) -> PortResult<Vec<Item>> {
        // DynamoDB refuses a request that names one key twice.
        let unique: BTreeSet<&Key> = keys.iter().collect();
        let sdk_keys: Vec<_> = unique.into_iter().map(key_to_sdk).collect();
        let chunks: Vec<Vec<_>> = sdk_keys.chunks(MAX_BATCH_GET).map(<[_]>::to_vec).collect();
        let pages: Vec<Vec<Item>> = futures::stream::iter(chunks)
            .map(|chunk| self.get_chunk(chunk))
            .buffer_unordered(BATCH_CONCURRENCY)
            .try_collect()
            .await?;
        let now = now_epoch();
        Ok(pages
            .into_iter()
            .flatten()
            .filter(|item| !item.is_expired(now))
            .collect())
    }

    async fn put(&self, item: Item, condition: Option<Condition>) -> PortResult<()> {
        require_key(&item)?;
        let mut expression = Expression::default();
        let condition_expression = expression.write_guard(condition.as_ref(), false, now_epoch());
        self.client
            .put_item()
            .table_name(&self.table_name)
            .set_item(Some(item_to_sdk(&item)))
            .set_condition_expression(condition_expression)
            .set_expression_attribute_names(expression.names())
            .set_expression_attribute_values(expression.values())
            .send()
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    async fn update(
        &self,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> PortResult<Item> {
        for _ in 0..EXPIRED_RETRIES {
            let now = now_epoch();
            let result = self
                .update_once(key, &update, condition.as_ref(), now)
                .await;
            let stopped_by_expired_item = result == Err(PortError::ConditionFailed)
                && self.clear_if_expired(key, now).await?;
            if !stopped_by_expired_item {
                return result;
            }
        }
        Err(PortError::Throttled(
            "the update kept meeting expired items; try again".into(),
        ))
    }

    async fn delete(&self, key: &Key, condition: Option<Condition>) -> PortResult<Option<Item>> {
        let now = now_epoch();
        let mut expression = Expression::default();
        let condition_expression = expression.write_guard(condition.as_ref(), false, now);
        let output = self
            .client
            .delete_item()
            .table_name(&self.table_name)
            .set_key(Some(key_to_sdk(key)))
            .set_condition_expression(condition_expression)
            .set_expression_attribute_names(expression.names())
            .set_expression_attribute_values(expression.values())
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        let old = output
            .attributes
            .filter(|attributes| !attributes.is_empty())
            .map(item_from_sdk)
            .transpose()?;
        Ok(old.filter(|item| !item.is_expired(now)))
    }

    async fn query(&self, query: Query) -> PortResult<Page> {
        validate_query_limit(query.limit)?;
        let limit = query
            .limit
            .map(|limit| i32::try_from(limit).unwrap_or(i32::MAX));
        let Some(sort) = normalize_sort(&query.sort) else {
            return Ok(Page::default());
        };
        let (pk_name, sk_name, index_name, consistent) = match query.index {
            Index::Primary => (PK, SK, None, true),
            // Secondary indexes are eventually consistent; DynamoDB refuses a consistent read on them.
            Index::Gsi1 => (GSI1_PK, GSI1_SK, Some(GSI1_NAME), false),
        };
        let start_key = query
            .cursor
            .as_ref()
            .map(start_key_from_cursor)
            .transpose()?;
        let mut expression = Expression::default();
        let key_condition = expression.key_condition(pk_name, &query.pk, sk_name, &sort);
        let output = self
            .client
            .query()
            .table_name(&self.table_name)
            .set_index_name(index_name.map(str::to_string))
            .key_condition_expression(key_condition)
            .set_expression_attribute_names(expression.names())
            .set_expression_attribute_values(expression.values())
            .scan_index_forward(query.forward)
            .set_limit(limit)
            .set_exclusive_start_key(start_key)
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        let now = now_epoch();
        let mut items = Vec::new();
        for item in output.items.unwrap_or_default() {
            let item = item_from_sdk(item)?;
            if !item.is_expired(now) {
                items.push(item);
            }
        }
        let cursor = output
            .last_evaluated_key
            .filter(|key| !key.is_empty())
            .map(cursor_from_last_key)
            .transpose()?;
        Ok(Page { items, cursor })
    }

    async fn batch_write(&self, ops: Vec<WriteOp>) -> PortResult<()> {
        let requests = last_write_per_key(ops)?
            .into_iter()
            .map(write_request)
            .collect::<PortResult<Vec<_>>>()?;
        let chunks: Vec<Vec<WriteRequest>> = requests
            .chunks(MAX_BATCH_WRITE)
            .map(<[_]>::to_vec)
            .collect();
        futures::stream::iter(chunks)
            .map(|chunk| self.write_chunk(chunk))
            .buffer_unordered(BATCH_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn transact_write(&self, ops: Vec<TransactOp>) -> PortResult<()> {
        // Checks what DynamoDB would refuse anyway, so that the error names the cause.
        validate_transaction(&ops, |op| match op {
            TransactOp::Put { item, .. } => require_key(item),
            TransactOp::Update { key, .. }
            | TransactOp::Delete { key, .. }
            | TransactOp::Check { key, .. } => Ok(key.clone()),
        })?;
        if ops.is_empty() {
            return Ok(());
        }
        for _ in 0..EXPIRED_RETRIES {
            let now = now_epoch();
            let failed = match self.transact_once(&ops, now).await? {
                Ok(()) => return Ok(()),
                Err(failed) => failed,
            };
            // An update's guard fails on an expired item; clear those and try again.
            let mut cleared_any = false;
            for &index in &failed {
                if let TransactOp::Update { key, .. } = &ops[index] {
                    cleared_any |= self.clear_if_expired(key, now).await?;
                }
            }
            if !cleared_any {
                return Err(PortError::TransactionCanceled { failed });
            }
        }
        Err(PortError::Throttled(
            "the transaction kept meeting expired items; try again".into(),
        ))
    }
}

fn now_epoch() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn build_error(error: aws_smithy_types::error::operation::BuildError) -> PortError {
    PortError::Invalid(format!("cannot build the DynamoDB request: {error}"))
}

/// DynamoDB refuses a batch that names one key twice; applying the operations in order means the last
/// one on each key wins, so only that one is sent.
fn last_write_per_key(ops: Vec<WriteOp>) -> PortResult<Vec<WriteOp>> {
    let mut seen = BTreeSet::new();
    let mut kept = Vec::with_capacity(ops.len());
    for op in ops.into_iter().rev() {
        let key = match &op {
            WriteOp::Put(item) => require_key(item)?,
            WriteOp::Delete(key) => key.clone(),
        };
        if seen.insert(key) {
            kept.push(op);
        }
    }
    kept.reverse();
    Ok(kept)
}

fn write_request(op: WriteOp) -> PortResult<WriteRequest> {
    Ok(match op {
        WriteOp::Put(item) => {
            let put = PutRequest::builder()
                .set_item(Some(item_to_sdk(&item)))
                .build()
                .map_err(build_error)?;
            WriteRequest::builder().put_request(put).build()
        }
        WriteOp::Delete(key) => {
            let delete = DeleteRequest::builder()
                .set_key(Some(key_to_sdk(&key)))
                .build()
                .map_err(build_error)?;
            WriteRequest::builder().delete_request(delete).build()
        }
    })
}

/// A sort condition DynamoDB accepts with the same meaning, or `None` when nothing can match. DynamoDB
/// refuses empty strings as key values and a `BETWEEN` whose bounds are reversed; key strings are never
/// empty, so each such bound decides the answer on its own.
fn normalize_sort(sort: &SortCondition) -> Option<SortCondition> {
    use SortCondition::*;
    match sort {
        Prefix(prefix) if prefix.is_empty() => Some(All),
        Between(low, high) if low > high => None,
        // Here `low <= high`, so both are empty: only an empty sort key, which cannot exist, would match.
        Between(_, high) if high.is_empty() => None,
        Between(low, high) if low.is_empty() => Some(LessOrEqual(high.clone())),
        GreaterThan(bound) | GreaterOrEqual(bound) if bound.is_empty() => Some(All),
        LessThan(bound) | LessOrEqual(bound) if bound.is_empty() => None,
        other => Some(other.clone()),
    }
}

/// Attribute names and values of one request's expressions, as placeholders.
#[derive(Default)]
struct Expression {
    names: BTreeMap<String, String>,
    values: HashMap<String, AttributeValue>,
    now: Option<String>,
}

impl Expression {
    fn name(&mut self, attribute: &str) -> String {
        let next = format!("#n{}", self.names.len());
        self.names
            .entry(attribute.to_string())
            .or_insert(next)
            .clone()
    }

    fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        // DynamoDB refuses an empty map.
        (!self.names.is_empty()).then(|| {
            self.names
                .iter()
                .map(|(attribute, placeholder)| (placeholder.clone(), attribute.clone()))
                .collect()
        })
    }

    fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }

    fn now_value(&mut self, now: i64) -> String {
        match &self.now {
            Some(placeholder) => placeholder.clone(),
            None => {
                let placeholder = self.value(AttributeValue::N(now.to_string()));
                self.now = Some(placeholder.clone());
                placeholder
            }
        }
    }

    /// True for an item whose `ttl` has passed. A missing or non-numeric `ttl` compares false.
    fn expired_at(&mut self, now: i64) -> String {
        let ttl = self.name(TTL);
        let now = self.now_value(now);
        format!("{ttl} <= {now}")
    }

    /// The condition, with an expired item counting as absent.
    fn condition(&mut self, condition: &Condition, now: i64) -> String {
        let expired = self.expired_at(now);
        match condition {
            Condition::NotExists => {
                let pk = self.name(PK);
                format!("(attribute_not_exists({pk}) OR {expired})")
            }
            Condition::Exists => {
                let pk = self.name(PK);
                format!("(attribute_exists({pk}) AND NOT ({expired}))")
            }
            Condition::AttrEquals { name, value } => {
                let name = self.name(name);
                let value = self.value(to_sdk(value));
                format!("({name} = {value} AND NOT ({expired}))")
            }
            Condition::VersionMatches(0) => {
                let version = self.name(VERSION);
                format!("(attribute_not_exists({version}) OR {expired})")
            }
            Condition::VersionMatches(expected) => {
                let version = self.name(VERSION);
                let expected = self.value(AttributeValue::N(expected.to_string()));
                format!("({version} = {expected} AND NOT ({expired}))")
            }
        }
    }

    /// The condition of a write. An update also requires the stored item not to be expired, because
    /// DynamoDB would update the expired attributes instead of starting afresh; its failure sends the
    /// caller to clear the item first.
    fn write_guard(
        &mut self,
        condition: Option<&Condition>,
        guard_expiry: bool,
        now: i64,
    ) -> Option<String> {
        let condition = condition.map(|condition| self.condition(condition, now));
        let guard = guard_expiry.then(|| {
            let expired = self.expired_at(now);
            format!("NOT ({expired})")
        });
        match (condition, guard) {
            (Some(condition), Some(guard)) => Some(format!("{condition} AND {guard}")),
            (condition, guard) => condition.or(guard),
        }
    }

    /// `SET … REMOVE … ADD …`, or `None` for an empty update.
    fn update(&mut self, update: &Update) -> Option<String> {
        let mut sets = Vec::new();
        for (name, value) in &update.set {
            let (name, value) = (self.name(name), self.value(to_sdk(value)));
            sets.push(format!("{name} = {value}"));
        }
        for (name, value) in &update.set_if_absent {
            let (name, value) = (self.name(name), self.value(to_sdk(value)));
            sets.push(format!("{name} = if_not_exists({name}, {value})"));
        }
        let removes: Vec<String> = update.remove.iter().map(|name| self.name(name)).collect();
        let mut adds = Vec::new();
        for (name, by) in &update.add {
            let (name, by) = (
                self.name(name),
                self.value(AttributeValue::N(by.to_string())),
            );
            adds.push(format!("{name} {by}"));
        }
        let clauses: Vec<String> = [("SET", sets), ("REMOVE", removes), ("ADD", adds)]
            .into_iter()
            .filter(|(_, parts)| !parts.is_empty())
            .map(|(keyword, parts)| format!("{keyword} {}", parts.join(", ")))
            .collect();
        (!clauses.is_empty()).then(|| clauses.join(" "))
    }

    fn key_condition(
        &mut self,
        pk_name: &str,
        pk: &str,
        sk_name: &str,
        sort: &SortCondition,
    ) -> String {
        let partition = format!("{} = {}", self.name(pk_name), self.string(pk));
        match self.sort_clause(sk_name, sort) {
            Some(clause) => format!("{partition} AND {clause}"),
            None => partition,
        }
    }

    /// The sort-key part of a key condition; `None` for `All`, which must not even name the sort key
    /// (DynamoDB refuses a placeholder that the expression does not use).
    fn sort_clause(&mut self, sk_name: &str, sort: &SortCondition) -> Option<String> {
        let clause = match sort {
            SortCondition::All => return None,
            SortCondition::Prefix(prefix) => format!(
                "begins_with({}, {})",
                self.name(sk_name),
                self.string(prefix)
            ),
            SortCondition::Between(low, high) => {
                format!(
                    "{} BETWEEN {} AND {}",
                    self.name(sk_name),
                    self.string(low),
                    self.string(high)
                )
            }
            SortCondition::GreaterThan(bound) => {
                format!("{} > {}", self.name(sk_name), self.string(bound))
            }
            SortCondition::GreaterOrEqual(bound) => {
                format!("{} >= {}", self.name(sk_name), self.string(bound))
            }
            SortCondition::LessThan(bound) => {
                format!("{} < {}", self.name(sk_name), self.string(bound))
            }
            SortCondition::LessOrEqual(bound) => {
                format!("{} <= {}", self.name(sk_name), self.string(bound))
            }
        };
        Some(clause)
    }

    fn string(&mut self, text: &str) -> String {
        self.value(AttributeValue::S(text.to_string()))
    }
}

/// A port value as an SDK value.
pub fn to_sdk(value: &AttrValue) -> AttributeValue {
    match value {
        AttrValue::S(s) => AttributeValue::S(s.clone()),
        AttrValue::N(n) => AttributeValue::N(n.to_string()),
        AttrValue::B(bytes) => AttributeValue::B(Blob::new(bytes.clone())),
        AttrValue::Bool(b) => AttributeValue::Bool(*b),
        AttrValue::Null(null) => AttributeValue::Null(*null),
        AttrValue::L(list) => AttributeValue::L(list.iter().map(to_sdk).collect()),
        AttrValue::M(map) => {
            AttributeValue::M(map.iter().map(|(k, v)| (k.clone(), to_sdk(v))).collect())
        }
    }
}

/// An SDK value as a port value. Sets, which Tern never writes, read as lists.
pub fn from_sdk(value: AttributeValue) -> PortResult<AttrValue> {
    let number = |text: String| {
        Number::parse(&text).map(AttrValue::N).ok_or_else(|| {
            PortError::Other(format!(
                "DynamoDB returned a number that is not one: {text}"
            ))
        })
    };
    Ok(match value {
        AttributeValue::S(s) => AttrValue::S(s),
        AttributeValue::N(n) => number(n)?,
        AttributeValue::B(blob) => AttrValue::B(blob.into_inner()),
        AttributeValue::Bool(b) => AttrValue::Bool(b),
        AttributeValue::Null(null) => AttrValue::Null(null),
        AttributeValue::L(list) => {
            AttrValue::L(list.into_iter().map(from_sdk).collect::<PortResult<_>>()?)
        }
        AttributeValue::M(map) => AttrValue::M(
            map.into_iter()
                .map(|(k, v)| Ok((k, from_sdk(v)?)))
                .collect::<PortResult<BTreeMap<_, _>>>()?,
        ),
        AttributeValue::Ss(strings) => {
            AttrValue::L(strings.into_iter().map(AttrValue::S).collect())
        }
        AttributeValue::Ns(numbers) => {
            AttrValue::L(numbers.into_iter().map(number).collect::<PortResult<_>>()?)
        }
        AttributeValue::Bs(blobs) => AttrValue::L(
            blobs
                .into_iter()
                .map(|b| AttrValue::B(b.into_inner()))
                .collect(),
        ),
        other => {
            return Err(PortError::Other(format!(
                "DynamoDB returned an attribute type this SDK does not know: {other:?}"
            )));
        }
    })
}

fn item_to_sdk(item: &Item) -> HashMap<String, AttributeValue> {
    item.0
        .iter()
        .map(|(name, value)| (name.clone(), to_sdk(value)))
        .collect()
}

fn item_from_sdk(attributes: HashMap<String, AttributeValue>) -> PortResult<Item> {
    let attrs = attributes
        .into_iter()
        .map(|(name, value)| Ok((name, from_sdk(value)?)))
        .collect::<PortResult<_>>()?;
    Ok(Item(attrs))
}

fn key_to_sdk(key: &Key) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_string(), AttributeValue::S(key.pk.clone())),
        (SK.to_string(), AttributeValue::S(key.sk.clone())),
    ])
}

fn cursor_from_last_key(last_key: HashMap<String, AttributeValue>) -> PortResult<Cursor> {
    Ok(Cursor::encode(&item_from_sdk(last_key)?))
}

/// The ExclusiveStartKey a cursor carries; only key attributes, as strings, are accepted.
fn start_key_from_cursor(cursor: &Cursor) -> PortResult<HashMap<String, AttributeValue>> {
    let invalid = || PortError::Invalid("the query cursor was not made by this table".into());
    let position: Item = cursor.decode().ok_or_else(invalid)?;
    let key_attributes = [PK, SK, GSI1_PK, GSI1_SK];
    let well_formed = !position.0.is_empty()
        && position
            .0
            .iter()
            .all(|(name, value)| key_attributes.contains(&name.as_str()) && value.as_s().is_some());
    if !well_formed {
        return Err(invalid());
    }
    Ok(item_to_sdk(&position))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_attribute_type_survives_the_round_trip() {
        let value = AttrValue::M(BTreeMap::from([
            ("s".to_string(), AttrValue::from("x")),
            ("n".to_string(), AttrValue::from(-3)),
            ("b".to_string(), AttrValue::B(vec![0, 255])),
            (
                "l".to_string(),
                AttrValue::L(vec![AttrValue::Bool(true), AttrValue::null()]),
            ),
        ]));
        assert_eq!(from_sdk(to_sdk(&value)).unwrap(), value);
    }

    #[test]
    fn a_malformed_number_is_an_error_not_a_panic() {
        assert!(matches!(
            from_sdk(AttributeValue::N("twelve".into())),
            Err(PortError::Other(_))
        ));
    }

    #[test]
    fn names_and_values_travel_as_placeholders() {
        let mut expression = Expression::default();
        let update = Update::new()
            .set("weird name", "x")
            .set_if_absent("created", 1)
            .remove("old")
            .add("count", 2i64);
        let text = expression.update(&update).unwrap();
        assert_eq!(
            text,
            "SET #n0 = :v0, #n1 = if_not_exists(#n1, :v1) REMOVE #n2 ADD #n3 :v2"
        );
        assert_eq!(expression.names().unwrap()["#n0"], "weird name");
    }

    #[test]
    fn an_update_guards_against_expired_items() {
        let mut expression = Expression::default();
        let guard = expression
            .write_guard(Some(&Condition::NotExists), true, 100)
            .unwrap();
        assert_eq!(
            guard,
            "(attribute_not_exists(#n1) OR #n0 <= :v0) AND NOT (#n0 <= :v0)"
        );
    }

    #[test]
    fn sort_conditions_dynamodb_would_refuse_are_decided_locally() {
        assert_eq!(
            normalize_sort(&SortCondition::Prefix(String::new())),
            Some(SortCondition::All)
        );
        assert_eq!(
            normalize_sort(&SortCondition::Between("b".into(), "a".into())),
            None
        );
        assert_eq!(
            normalize_sort(&SortCondition::LessThan(String::new())),
            None
        );
        assert_eq!(
            normalize_sort(&SortCondition::Between(String::new(), "k".into())),
            Some(SortCondition::LessOrEqual("k".into()))
        );
    }

    #[test]
    fn a_forged_cursor_is_invalid() {
        let forged = Cursor::encode(&Item::default().with("secret", "x"));
        assert!(matches!(
            start_key_from_cursor(&forged),
            Err(PortError::Invalid(_))
        ));
        assert!(matches!(
            start_key_from_cursor(&Cursor("%%%".into())),
            Err(PortError::Invalid(_))
        ));
    }

    #[test]
    fn a_batch_keeps_the_last_operation_per_key() {
        let key = Key::new("p", "s");
        let ops = vec![
            WriteOp::Put(Item::new(&key)),
            WriteOp::Delete(Key::new("p", "t")),
            WriteOp::Delete(key.clone()),
        ];
        let kept = last_write_per_key(ops).unwrap();
        assert_eq!(
            kept,
            vec![WriteOp::Delete(Key::new("p", "t")), WriteOp::Delete(key)]
        );
    }
}
