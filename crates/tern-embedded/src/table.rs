//! The embedded table adapter: DynamoDB's item model on the shared SQLite database.
//!
//! Each item is one row keyed by `(pk, sk)`, its other attributes in the `item` column in a compact binary
//! encoding (see `codec`; rows of DynamoDB JSON text written before it are still read); `gsi1pk`/`gsi1sk`
//! and `ttl` are copied into columns so that the sparse index and expiry are plain SQL. Text compares with
//! SQLite's default `BINARY` collation, which is UTF-8 byte order — DynamoDB's order for string keys. Every
//! write runs inside one SQLite transaction ([`Db::write`]), so conditions, updates and transactions are
//! atomic; each checks its conditions before its first change, as `Db::write` asks.
//!
//! Expired items (a `ttl` at or before now) are absent to reads and to conditions; a write over one starts
//! from nothing, as if DynamoDB's TTL sweep had already removed it.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde::{Deserialize, Serialize};
use tern_ports::table::{
    AttrValue, GSI1_PK, GSI1_SK, PK, SK, TTL, require_key, validate_query_limit,
};
use tern_ports::{
    Clock, Condition, Cursor, Index, Item, Key, Page, PortError, PortResult, Query, SortCondition,
    SystemClock, Table, TransactOp, Update, WriteOp,
};

use crate::db::{Db, cached, sqlite_error};

mod codec;

/// DynamoDB's size limits on key attributes, in bytes.
const MAX_PARTITION_KEY_BYTES: usize = 2048;
const MAX_SORT_KEY_BYTES: usize = 1024;

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS table_items (
        pk     TEXT NOT NULL,
        sk     TEXT NOT NULL,
        gsi1pk TEXT,
        gsi1sk TEXT,
        ttl    INTEGER,
        item   TEXT NOT NULL,
        PRIMARY KEY (pk, sk)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS table_items_gsi1 ON table_items (gsi1pk, gsi1sk, pk, sk)
        WHERE gsi1pk IS NOT NULL AND gsi1sk IS NOT NULL;
    CREATE INDEX IF NOT EXISTS table_items_ttl ON table_items (ttl) WHERE ttl IS NOT NULL;
";

/// The table port on SQLite.
#[derive(Clone)]
pub struct SqliteTable {
    db: Db,
    clock: Arc<dyn Clock>,
}

impl SqliteTable {
    /// Creates the schema if needed; expiry follows the system clock.
    pub fn new(db: Db) -> PortResult<Self> {
        db.call_blocking(|conn| conn.execute_batch(SCHEMA).map_err(sqlite_error))?;
        Ok(Self {
            db,
            clock: Arc::new(SystemClock),
        })
    }

    /// Judges expiry by `clock` instead of the system clock (simulations on a virtual clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Deletes every item expired at `now_epoch` (seconds); returns how many. Reads already ignore expired
    /// items, so this only reclaims space, like DynamoDB's background TTL sweep.
    pub async fn purge_expired(&self, now_epoch: i64) -> PortResult<usize> {
        self.db
            .write(move |conn| {
                cached(
                    conn,
                    "DELETE FROM table_items WHERE ttl IS NOT NULL AND ttl <= ?1",
                )?
                .execute(params![now_epoch])
                .map_err(sqlite_error)
            })
            .await
    }

    fn now_epoch(&self) -> i64 {
        self.clock.now().as_second()
    }
}

#[async_trait]
impl Table for SqliteTable {
    async fn get(&self, key: &Key) -> PortResult<Option<Item>> {
        validate_key(key)?;
        let (key, now) = (key.clone(), self.now_epoch());
        self.db.read(move |conn| load_live(conn, &key, now)).await
    }

    async fn batch_get(&self, keys: &[Key]) -> PortResult<Vec<Item>> {
        keys.iter().try_for_each(validate_key)?;
        let unique: BTreeSet<Key> = keys.iter().cloned().collect();
        let now = self.now_epoch();
        self.db
            .read(move |conn| {
                // One read transaction: one snapshot, and the WAL read lock taken once for all keys.
                let tx = conn.transaction().map_err(sqlite_error)?;
                let mut found = Vec::with_capacity(unique.len());
                for key in &unique {
                    found.extend(load_live(&tx, key, now)?);
                }
                tx.commit().map_err(sqlite_error)?;
                Ok(found)
            })
            .await
    }

    async fn put(&self, item: Item, condition: Option<Condition>) -> PortResult<()> {
        let row = Row::new(validate_item(&item)?, &item);
        let now = self.now_epoch();
        self.db
            .write(move |conn| {
                if let Some(condition) = &condition
                    && !condition_holds(conn, &row.key, now, condition)?
                {
                    return Err(PortError::ConditionFailed);
                }
                store(conn, &row)
            })
            .await
    }

    async fn update(
        &self,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> PortResult<Item> {
        validate_key(key)?;
        validate_update(&update)?;
        let (key, now) = (key.clone(), self.now_epoch());
        self.db
            .write(move |conn| {
                let current = load_live(conn, &key, now)?;
                check(condition.as_ref(), current.as_ref())?;
                let (row, updated) = Row::updated(&key, &update, current)?;
                store(conn, &row)?;
                Ok(updated)
            })
            .await
    }

    async fn delete(&self, key: &Key, condition: Option<Condition>) -> PortResult<Option<Item>> {
        validate_key(key)?;
        let (key, now) = (key.clone(), self.now_epoch());
        self.db
            .write(move |conn| {
                let current = load_live(conn, &key, now)?;
                check(condition.as_ref(), current.as_ref())?;
                remove(conn, &key)?;
                Ok(current)
            })
            .await
    }

    async fn query(&self, query: Query) -> PortResult<Page> {
        validate_query_limit(query.limit)?;
        let after = query
            .cursor
            .as_ref()
            .map(|cursor| Position::decode(cursor, query.index))
            .transpose()?;
        let now = self.now_epoch();
        self.db
            .read(move |conn| run_query(conn, &query, after.as_ref(), now))
            .await
    }

    async fn batch_write(&self, ops: Vec<WriteOp>) -> PortResult<()> {
        // Encoded before taking the database, so that the work under its lock is only SQL.
        let writes = ops
            .into_iter()
            .map(|op| match op {
                WriteOp::Put(item) => Ok(Write::Put(Row::new(validate_item(&item)?, &item))),
                WriteOp::Delete(key) => validate_key(&key).map(|()| Write::Delete(key)),
            })
            .collect::<PortResult<Vec<_>>>()?;
        if writes.is_empty() {
            return Ok(());
        }
        self.db
            .write(move |conn| {
                // Applied in order, so the last operation on a key wins, as the AWS adapter guarantees.
                writes.iter().try_for_each(|write| apply_write(conn, write))
            })
            .await
    }

    async fn transact_write(&self, ops: Vec<TransactOp>) -> PortResult<()> {
        let keys = validate_transaction(&ops)?;
        if ops.is_empty() {
            return Ok(());
        }
        let now = self.now_epoch();
        self.db
            .write(move |conn| apply_transaction(conn, &ops, &keys, now))
            .await
    }
}

fn check(condition: Option<&Condition>, current: Option<&Item>) -> PortResult<()> {
    match condition {
        Some(condition) if !condition.holds_for(current) => Err(PortError::ConditionFailed),
        _ => Ok(()),
    }
}

/// Checks every condition, then applies every operation.
fn apply_transaction(
    conn: &Connection,
    ops: &[TransactOp],
    keys: &[Key],
    now: i64,
) -> PortResult<()> {
    let mut current = Vec::with_capacity(ops.len());
    let mut failed = Vec::new();
    for (index, (op, key)) in ops.iter().zip(keys).enumerate() {
        // Only an update starts from the stored item; the other operations need at most its condition.
        let (stored, holds) = match op {
            TransactOp::Update { condition, .. } => {
                let stored = load_live(conn, key, now)?;
                let holds = condition
                    .as_ref()
                    .is_none_or(|condition| condition.holds_for(stored.as_ref()));
                (stored, holds)
            }
            other => {
                let holds = match other.condition() {
                    Some(condition) => condition_holds(conn, key, now, condition)?,
                    None => true,
                };
                (None, holds)
            }
        };
        if !holds {
            failed.push(index);
        }
        current.push(stored);
    }
    if !failed.is_empty() {
        return Err(PortError::TransactionCanceled { failed });
    }
    // Every update is worked out before anything is written: an update that turns out invalid fails the
    // transaction before its first change, as `Db::write` requires.
    let writes = ops
        .iter()
        .zip(keys)
        .zip(current)
        .filter_map(|((op, key), stored)| match op {
            TransactOp::Put { item, .. } => Some(Ok(Write::Put(Row::new(key.clone(), item)))),
            TransactOp::Update { update, .. } => {
                Some(Row::updated(key, update, stored).map(|(row, _)| Write::Put(row)))
            }
            TransactOp::Delete { .. } => Some(Ok(Write::Delete(key.clone()))),
            TransactOp::Check { .. } => None,
        })
        .collect::<PortResult<Vec<_>>>()?;
    writes.iter().try_for_each(|write| apply_write(conn, write))
}

/// The port's transaction checks, with this engine's checks of each operation; returns each operation's
/// key.
fn validate_transaction(ops: &[TransactOp]) -> PortResult<Vec<Key>> {
    tern_ports::table::validate_transaction(ops, |op| match op {
        TransactOp::Put { item, .. } => validate_item(item),
        TransactOp::Update { key, update, .. } => {
            validate_update(update)?;
            validate_key(key).map(|()| key.clone())
        }
        TransactOp::Delete { key, .. } | TransactOp::Check { key, .. } => {
            validate_key(key).map(|()| key.clone())
        }
    })
}

fn validate_key(key: &Key) -> PortResult<()> {
    validate_key_part(PK, &key.pk, MAX_PARTITION_KEY_BYTES)?;
    validate_key_part(SK, &key.sk, MAX_SORT_KEY_BYTES)
}

fn validate_key_part(name: &str, value: &str, max_bytes: usize) -> PortResult<()> {
    if value.is_empty() {
        return Err(PortError::Invalid(format!(
            "key attribute {name} must not be empty"
        )));
    }
    if value.len() > max_bytes {
        return Err(PortError::Invalid(format!(
            "key attribute {name} is longer than {max_bytes} bytes"
        )));
    }
    Ok(())
}

/// The item's key, after checking its key and index attributes are what DynamoDB accepts.
fn validate_item(item: &Item) -> PortResult<Key> {
    let key = require_key(item)?;
    validate_key(&key)?;
    for name in [GSI1_PK, GSI1_SK] {
        match item.get(name) {
            None | Some(AttrValue::S(_)) => {}
            Some(_) => {
                return Err(PortError::Invalid(format!(
                    "index key attribute {name} must be a string"
                )));
            }
        }
        if item.get_s(name) == Some("") {
            return Err(PortError::Invalid(format!(
                "index key attribute {name} must not be empty"
            )));
        }
    }
    Ok(key)
}

/// Refuses what DynamoDB refuses in an update expression: touching the key, or naming an attribute twice.
fn validate_update(update: &Update) -> PortResult<()> {
    let names = update
        .set
        .iter()
        .chain(&update.set_if_absent)
        .map(|(name, _)| name)
        .chain(&update.remove)
        .chain(update.add.iter().map(|(name, _)| name));
    let mut seen = BTreeSet::new();
    for name in names {
        if name == PK || name == SK {
            return Err(PortError::Invalid(format!(
                "cannot update key attribute {name}"
            )));
        }
        if !seen.insert(name) {
            return Err(PortError::Invalid(format!(
                "an update names attribute {name} twice"
            )));
        }
    }
    Ok(())
}

fn apply_update(key: &Key, update: &Update, current: Option<Item>) -> PortResult<Item> {
    if let Some(stored) = &current {
        for (name, _) in &update.add {
            if stored.get(name).is_some_and(|value| value.as_n().is_none()) {
                return Err(PortError::Invalid(format!(
                    "cannot add to attribute {name}: it is not a number"
                )));
            }
        }
    }
    let updated = update.apply(key, current);
    validate_item(&updated)?;
    Ok(updated)
}

/// Whether `condition` holds for the live item under `key`; the item is read only when the condition
/// looks inside it.
fn condition_holds(
    conn: &Connection,
    key: &Key,
    now: i64,
    condition: &Condition,
) -> PortResult<bool> {
    match condition {
        Condition::NotExists => Ok(!exists_live(conn, key, now)?),
        Condition::Exists => exists_live(conn, key, now),
        _ => Ok(condition.holds_for(load_live(conn, key, now)?.as_ref())),
    }
}

fn exists_live(conn: &Connection, key: &Key, now: i64) -> PortResult<bool> {
    cached(
        conn,
        "SELECT EXISTS (SELECT 1 FROM table_items
                        WHERE pk = ?1 AND sk = ?2 AND (ttl IS NULL OR ttl > ?3))",
    )?
    .query_row(params![key.pk, key.sk, now], |row| row.get(0))
    .map_err(sqlite_error)
}

fn load_live(conn: &Connection, key: &Key, now: i64) -> PortResult<Option<Item>> {
    cached(
        conn,
        "SELECT item FROM table_items WHERE pk = ?1 AND sk = ?2 AND (ttl IS NULL OR ttl > ?3)",
    )?
    .query_row(params![key.pk, key.sk, now], |row| {
        Ok(decode_item(key.clone(), row.get_ref(0)?))
    })
    .optional()
    .map_err(sqlite_error)?
    .transpose()
}

/// An item as its row stores it: the key, the columns copied for the index and expiry, and the encoding.
struct Row {
    key: Key,
    gsi1: Option<Key>,
    ttl: Option<i64>,
    encoded: Vec<u8>,
    /// The row exists with the same index and expiry columns, so only the item needs writing: SQLite then
    /// leaves the indexes alone, where an upsert would rewrite their entries.
    only_item_changed: bool,
}

impl Row {
    fn new(key: Key, item: &Item) -> Self {
        Self {
            key,
            gsi1: item.gsi1_key(),
            ttl: item.get_i64(TTL),
            encoded: codec::encode(item),
            only_item_changed: false,
        }
    }

    /// The row of `update` applied to `stored`, the live item it starts from.
    fn updated(key: &Key, update: &Update, stored: Option<Item>) -> PortResult<(Self, Item)> {
        let before = stored
            .as_ref()
            .map(|item| (item.gsi1_key(), item.get_i64(TTL)));
        let updated = apply_update(key, update, stored)?;
        let mut row = Row::new(key.clone(), &updated);
        row.only_item_changed =
            before.is_some_and(|(gsi1, ttl)| gsi1 == row.gsi1 && ttl == row.ttl);
        Ok((row, updated))
    }
}

/// One write, ready for the database.
enum Write {
    Put(Row),
    Delete(Key),
}

fn apply_write(conn: &Connection, write: &Write) -> PortResult<()> {
    match write {
        Write::Put(row) => store(conn, row),
        Write::Delete(key) => remove(conn, key),
    }
}

fn store(conn: &Connection, row: &Row) -> PortResult<()> {
    let Row {
        key,
        gsi1,
        ttl,
        encoded,
        only_item_changed,
    } = row;
    if *only_item_changed {
        cached(
            conn,
            "UPDATE table_items SET item = ?3 WHERE pk = ?1 AND sk = ?2",
        )?
        .execute(params![key.pk, key.sk, encoded])
        .map_err(sqlite_error)?;
        return Ok(());
    }
    cached(
        conn,
        "INSERT INTO table_items (pk, sk, gsi1pk, gsi1sk, ttl, item) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (pk, sk) DO UPDATE SET
             gsi1pk = excluded.gsi1pk, gsi1sk = excluded.gsi1sk, ttl = excluded.ttl, item = excluded.item",
    )?
    .execute(params![
            key.pk,
            key.sk,
            gsi1.as_ref().map(|k| k.pk.as_str()),
            gsi1.as_ref().map(|k| k.sk.as_str()),
            ttl,
            encoded
        ],
    )
    .map_err(sqlite_error)?;
    Ok(())
}

fn remove(conn: &Connection, key: &Key) -> PortResult<()> {
    cached(conn, "DELETE FROM table_items WHERE pk = ?1 AND sk = ?2")?
        .execute(params![key.pk, key.sk])
        .map_err(sqlite_error)?;
    Ok(())
}

/// The item in a row's `item` column.
fn decode_item(key: Key, column: ValueRef<'_>) -> PortResult<Item> {
    let stored = match column {
        ValueRef::Blob(bytes) => codec::Stored::Binary(bytes),
        ValueRef::Text(text) => codec::Stored::Json(std::str::from_utf8(text).map_err(|e| {
            PortError::Other(format!(
                "the stored item ({}, {}) is not UTF-8: {e}",
                key.pk, key.sk
            ))
        })?),
        other => {
            return Err(PortError::Other(format!(
                "the stored item ({}, {}) is a {:?}, not an item",
                key.pk,
                key.sk,
                other.data_type()
            )));
        }
    };
    codec::decode(key, stored)
}

/// Where a page ended: the last item's sort position in the index it was read from.
#[derive(Debug, Serialize, Deserialize)]
struct Position {
    index: String,
    sort: String,
    pk: String,
    sk: String,
}

impl Position {
    fn index_name(index: Index) -> &'static str {
        match index {
            Index::Primary => "primary",
            Index::Gsi1 => "gsi1",
        }
    }

    fn of(item: &Item, index: Index) -> PortResult<Self> {
        let key = item
            .key()
            .ok_or_else(|| PortError::Other("a stored item lost its key".into()))?;
        let sort = match index {
            Index::Primary => key.sk.clone(),
            Index::Gsi1 => item.get_s(GSI1_SK).unwrap_or_default().to_string(),
        };
        Ok(Self {
            index: Self::index_name(index).to_string(),
            sort,
            pk: key.pk,
            sk: key.sk,
        })
    }

    fn decode(cursor: &Cursor, index: Index) -> PortResult<Self> {
        cursor
            .decode::<Position>()
            .filter(|position| position.index == Self::index_name(index))
            .ok_or_else(|| {
                PortError::Invalid(
                    "the query cursor was not made by this table for this index".into(),
                )
            })
    }
}

/// Builds and runs one page of a query. In `gsi1` several items may share a sort key, so the order (and the
/// cursor) continues on the table key to keep pages disjoint.
fn run_query(
    conn: &Connection,
    query: &Query,
    after: Option<&Position>,
    now: i64,
) -> PortResult<Page> {
    let (pk_column, sort_column, order_columns): (&str, &str, &[&str]) = match query.index {
        Index::Primary => ("pk", "sk", &["sk"]),
        Index::Gsi1 => ("gsi1pk", "gsi1sk", &["gsi1sk", "pk", "sk"]),
    };
    let mut clauses = vec![
        format!("{pk_column} = ?"),
        format!("{sort_column} IS NOT NULL"),
        "(ttl IS NULL OR ttl > ?)".into(),
    ];
    let mut values: Vec<Value> = vec![Value::Text(query.pk.clone()), Value::Integer(now)];
    push_sort_condition(&query.sort, sort_column, &mut clauses, &mut values);

    let direction = if query.forward { "ASC" } else { "DESC" };
    if let Some(position) = after {
        let comparison = if query.forward { ">" } else { "<" };
        let (columns, mut bound) = match query.index {
            Index::Primary => ("(sk)".to_string(), vec![Value::Text(position.sk.clone())]),
            Index::Gsi1 => (
                "(gsi1sk, pk, sk)".to_string(),
                vec![
                    Value::Text(position.sort.clone()),
                    Value::Text(position.pk.clone()),
                    Value::Text(position.sk.clone()),
                ],
            ),
        };
        let placeholders = vec!["?"; bound.len()].join(", ");
        clauses.push(format!("{columns} {comparison} ({placeholders})"));
        values.append(&mut bound);
    }
    let order = order_columns
        .iter()
        .map(|column| format!("{column} {direction}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut sql = format!(
        "SELECT pk, sk, item FROM table_items WHERE {} ORDER BY {order}",
        clauses.join(" AND ")
    );
    if let Some(limit) = query.limit {
        // One more than asked for tells whether another page follows.
        sql.push_str(" LIMIT ?");
        values.push(Value::Integer(i64::from(limit) + 1));
    }

    let mut statement = cached(conn, &sql)?;
    let mut items = statement
        .query_map(params_from_iter(values), |row| {
            let key = Key::new(row.get::<_, String>(0)?, row.get::<_, String>(1)?);
            Ok(decode_item(key, row.get_ref(2)?))
        })
        .map_err(sqlite_error)?
        .collect::<Result<PortResult<Vec<_>>, _>>()
        .map_err(sqlite_error)??;

    let cursor = match query.limit {
        Some(limit) if items.len() > limit as usize => {
            items.truncate(limit as usize);
            let last = items
                .last()
                .ok_or_else(|| PortError::Other("a full page has a last item".into()))?;
            Some(Cursor::encode(&Position::of(last, query.index)?))
        }
        _ => None,
    };
    Ok(Page { items, cursor })
}

fn push_sort_condition(
    sort: &SortCondition,
    column: &str,
    clauses: &mut Vec<String>,
    values: &mut Vec<Value>,
) {
    let mut bound = |clause: String, bounds: &[&String]| {
        clauses.push(clause);
        values.extend(bounds.iter().map(|bound| Value::Text((*bound).clone())));
    };
    match sort {
        SortCondition::All => {}
        // The range comparison lets SQLite use the index; `substr` (in characters on both sides) decides.
        SortCondition::Prefix(prefix) => bound(
            format!("{column} >= ? AND substr({column}, 1, length(?)) = ?"),
            &[prefix, prefix, prefix],
        ),
        SortCondition::Between(low, high) => {
            bound(format!("{column} BETWEEN ? AND ?"), &[low, high])
        }
        SortCondition::GreaterThan(value) => bound(format!("{column} > ?"), &[value]),
        SortCondition::GreaterOrEqual(value) => bound(format!("{column} >= ?"), &[value]),
        SortCondition::LessThan(value) => bound(format!("{column} < ?"), &[value]),
        SortCondition::LessOrEqual(value) => bound(format!("{column} <= ?"), &[value]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> SqliteTable {
        SqliteTable::new(Db::in_memory().expect("in-memory database")).expect("schema")
    }

    #[tokio::test]
    async fn purge_expired_removes_only_expired_rows() {
        let table = table();
        let expired = Item::new(&Key::new("p", "old")).with(TTL, 100);
        let live = Item::new(&Key::new("p", "new")).with(TTL, 300);
        let permanent = Item::new(&Key::new("p", "forever"));
        table
            .batch_write(vec![
                WriteOp::Put(expired),
                WriteOp::Put(live),
                WriteOp::Put(permanent),
            ])
            .await
            .unwrap();
        assert_eq!(table.purge_expired(200).await.unwrap(), 1);
        let remaining = table.db.call(|conn| {
            conn.query_row(
                "SELECT count(*) FROM table_items WHERE pk = 'p'",
                [],
                |row| row.get::<_, i64>(0),
            )
            .map_err(sqlite_error)
        });
        assert_eq!(remaining.await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_virtual_clock_decides_expiry() {
        let start: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let clock = Arc::new(tern_ports::VirtualClock::new(start));
        let table = table().with_clock(clock.clone());
        let key = Key::new("p", "lease");
        table
            .put(Item::new(&key).with(TTL, start.as_second() + 60), None)
            .await
            .unwrap();
        assert!(table.get(&key).await.unwrap().is_some());
        clock.advance(jiff::SignedDuration::from_secs(60));
        assert_eq!(table.get(&key).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_cursor_from_another_index_is_refused() {
        let table = table();
        let items = (0..3)
            .map(|n| WriteOp::Put(Item::new(&Key::new("p", format!("s{n}")))))
            .collect();
        table.batch_write(items).await.unwrap();
        let page = table.query(Query::new("p").limit(1)).await.unwrap();
        let result = table.query(Query::on_gsi1("p").after(page.cursor)).await;
        assert!(matches!(result, Err(PortError::Invalid(_))));
        let forged = table
            .query(Query::new("p").after(Some(Cursor("not-a-cursor".into()))))
            .await;
        assert!(matches!(forged, Err(PortError::Invalid(_))));
    }

    #[tokio::test]
    async fn an_item_stored_as_dynamodb_json_text_is_still_read_and_rewritten_in_the_compact_encoding()
     {
        let table = table();
        let key = Key::new("p", "old");
        let item = Item::new(&key).with("name", "Ada").with("visits", 3i64);
        let json = serde_json::to_string(&item).unwrap();
        table
            .db
            .call(move |conn| {
                conn.execute(
                    "INSERT INTO table_items (pk, sk, item) VALUES ('p', 'old', ?1)",
                    params![json],
                )
                .map_err(sqlite_error)
            })
            .await
            .unwrap();
        assert_eq!(table.get(&key).await.unwrap(), Some(item.clone()));

        let updated = table
            .update(&key, Update::new().add("visits", 1i64), None)
            .await
            .unwrap();
        assert_eq!(updated, item.with("visits", 4i64));
        let stored_type = table.db.call(|conn| {
            conn.query_row(
                "SELECT typeof(item) FROM table_items WHERE pk = 'p' AND sk = 'old'",
                [],
                |row| row.get::<_, String>(0),
            )
            .map_err(sqlite_error)
        });
        assert_eq!(stored_type.await.unwrap(), "blob");
        assert_eq!(table.get(&key).await.unwrap(), Some(updated));
    }

    #[tokio::test]
    async fn adding_to_a_string_is_refused() {
        let table = table();
        let key = Key::new("p", "s");
        table
            .put(Item::new(&key).with("count", "ten"), None)
            .await
            .unwrap();
        let result = table
            .update(&key, Update::new().add("count", 1i64), None)
            .await;
        assert!(matches!(result, Err(PortError::Invalid(_))));
    }
}
