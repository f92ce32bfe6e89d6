//! The embedded queue adapter: SQS's standard-queue model on two SQLite tables.
//!
//! `queue_queues` holds each declared queue's spec; `queue_messages` holds every message with the time it
//! becomes visible (`visible_at_ms`, milliseconds since the Unix epoch), its receive count and the receipt
//! of its latest receive. A receive claims visible messages in one immediate transaction, so concurrent
//! receivers (in this process or another one on the same file) never get the same message within its
//! visibility timeout.
//!
//! Differences from SQS, all stricter: only the receipt of the latest receive is accepted (a stale receipt
//! is `PortError::NotFound`, where SQS silently ignores it), and time has millisecond rather than second
//! precision.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use tern_ports::queue::{
    MAX_VISIBILITY_TIMEOUT, MAX_WAIT, OutMessage, QueueSpec, Received, validate_message,
    validate_receive_max, validate_visibility_timeout,
};
use tern_ports::{PortError, PortResult, Queue};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::db::{Db, cached, sqlite_error};

/// SQS's limit on a receive count before a dead-letter move.
const MAX_MAX_RECEIVES: u32 = 1000;
/// SQS's default visibility timeout, given to a dead-letter queue that `declare` creates.
const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a waiting receive looks again even when nothing in this process sent: another process on the
/// same database file may have.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queue_queues (
    name TEXT PRIMARY KEY,
    visibility_timeout_ms INTEGER NOT NULL,
    dead_letter_queue TEXT,
    max_receives INTEGER
) STRICT;
CREATE TABLE IF NOT EXISTS queue_messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    queue TEXT NOT NULL REFERENCES queue_queues (name),
    body TEXT NOT NULL,
    attributes TEXT NOT NULL,
    visible_at_ms INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT UNIQUE
) STRICT;
CREATE INDEX IF NOT EXISTS queue_messages_by_visibility ON queue_messages (queue, visible_at_ms, seq);
";

/// The queue port on the shared SQLite database.
pub struct SqliteQueue {
    db: Db,
    /// Woken by every send through this value, so that waiting receives return at once.
    sent: Arc<Notify>,
}

impl SqliteQueue {
    /// Creates the queue tables if needed.
    pub fn new(db: Db) -> PortResult<SqliteQueue> {
        db.call_blocking(|conn| conn.execute_batch(SCHEMA).map_err(sqlite_error))?;
        Ok(SqliteQueue {
            db,
            sent: Arc::new(Notify::new()),
        })
    }
}

#[async_trait]
impl Queue for SqliteQueue {
    async fn declare(&self, spec: &QueueSpec) -> PortResult<()> {
        let declared = StoredSpec::from_spec(spec)?;
        let name = spec.name.clone();
        self.db
            .write(move |conn| declare(conn, &name, &declared))
            .await
    }

    async fn send_batch(&self, queue: &str, messages: Vec<OutMessage>) -> PortResult<()> {
        for (index, message) in messages.iter().enumerate() {
            validate_message(queue, index, message)?;
        }
        let messages = messages
            .into_iter()
            .map(NewMessage::new)
            .collect::<PortResult<Vec<_>>>()?;
        let queue = queue.to_string();
        self.db
            .write(move |conn| insert_messages(conn, &queue, &messages))
            .await?;
        self.sent.notify_waiters();
        Ok(())
    }

    async fn receive(&self, queue: &str, max: u32, wait: Duration) -> PortResult<Vec<Received>> {
        validate_receive_max(max)?;
        let deadline = Instant::now() + wait.min(MAX_WAIT);
        loop {
            // Registered before looking, so a send between the look and the wait still wakes us.
            let sent = self.sent.notified();
            tokio::pin!(sent);
            sent.as_mut().enable();

            let owned_queue = queue.to_string();
            let claim = self
                .db
                .write(move |conn| claim_visible(conn, &owned_queue, max))
                .await?;
            let now = Instant::now();
            if !claim.received.is_empty() || now >= deadline {
                return Ok(claim.received);
            }
            let mut wake = deadline.min(now + POLL_INTERVAL);
            if let Some(next) = claim.next_visible_in {
                wake = wake.min(now + next);
            }
            tokio::select! {
                () = &mut sent => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    async fn delete(&self, queue: &str, receipt: &str) -> PortResult<()> {
        let (queue, receipt) = (queue.to_string(), receipt.to_string());
        self.db
            .write(move |conn| delete_received(conn, &queue, &receipt))
            .await
    }

    async fn change_visibility(
        &self,
        queue: &str,
        receipt: &str,
        timeout: Duration,
    ) -> PortResult<()> {
        validate_visibility_timeout(queue, timeout)?;
        let (queue, receipt) = (queue.to_string(), receipt.to_string());
        self.db
            .write(move |conn| change_visibility(conn, &queue, &receipt, timeout))
            .await
    }
}

/// The current time as the database stores it. The one place this adapter reads the clock.
fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    millis(since_epoch)
}

/// Durations here are bounded by validation (at most hours), so they always fit.
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A queue's spec as stored, compared field by field when a queue is declared again.
#[derive(Debug, PartialEq, Eq)]
struct StoredSpec {
    visibility_timeout_ms: i64,
    dead_letter: Option<(String, u32)>,
}

impl std::fmt::Display for StoredSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a visibility timeout of {} ms",
            self.visibility_timeout_ms
        )?;
        match &self.dead_letter {
            Some((queue, max_receives)) => write!(
                f,
                " and dead-letter queue {queue} after {max_receives} receives"
            ),
            None => write!(f, " and no dead-letter queue"),
        }
    }
}

impl StoredSpec {
    fn from_spec(spec: &QueueSpec) -> PortResult<StoredSpec> {
        validate_queue_name(&spec.name)?;
        if spec.visibility_timeout > MAX_VISIBILITY_TIMEOUT {
            return Err(PortError::Invalid(format!(
                "visibility timeout {:?} of queue {} exceeds {MAX_VISIBILITY_TIMEOUT:?}",
                spec.visibility_timeout, spec.name
            )));
        }
        let dead_letter = match &spec.dead_letter {
            None => None,
            Some(dead_letter) => {
                validate_queue_name(&dead_letter.queue)?;
                if dead_letter.queue == spec.name {
                    return Err(PortError::Invalid(format!(
                        "queue {} cannot be its own dead-letter queue",
                        spec.name
                    )));
                }
                if !(1..=MAX_MAX_RECEIVES).contains(&dead_letter.max_receives) {
                    return Err(PortError::Invalid(format!(
                        "max receives {} of queue {} is outside 1..={MAX_MAX_RECEIVES}",
                        dead_letter.max_receives, spec.name
                    )));
                }
                Some((dead_letter.queue.clone(), dead_letter.max_receives))
            }
        };
        Ok(StoredSpec {
            visibility_timeout_ms: millis(spec.visibility_timeout),
            dead_letter,
        })
    }

    fn default_for_dead_letter_queue() -> StoredSpec {
        StoredSpec {
            visibility_timeout_ms: millis(DEFAULT_VISIBILITY_TIMEOUT),
            dead_letter: None,
        }
    }
}

/// SQS's queue-name rule, so that a name that works here also works on AWS.
fn validate_queue_name(name: &str) -> PortResult<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if name.is_empty() || name.len() > 80 || !name.chars().all(allowed) {
        return Err(PortError::Invalid(format!(
            "queue name {name:?} must be 1 to 80 letters, digits, hyphens or underscores"
        )));
    }
    Ok(())
}

fn load_spec(conn: &Connection, queue: &str) -> PortResult<Option<StoredSpec>> {
    cached(
        conn,
        "SELECT visibility_timeout_ms, dead_letter_queue, max_receives FROM queue_queues
         WHERE name = ?1",
    )?
    .query_row(params![queue], |row| {
        let dead_letter_queue: Option<String> = row.get(1)?;
        let max_receives: Option<u32> = row.get(2)?;
        Ok(StoredSpec {
            visibility_timeout_ms: row.get(0)?,
            dead_letter: dead_letter_queue.zip(max_receives),
        })
    })
    .optional()
    .map_err(sqlite_error)
}

fn require_spec(conn: &Connection, queue: &str) -> PortResult<StoredSpec> {
    load_spec(conn, queue)?.ok_or_else(|| PortError::NotFound(format!("queue {queue}")))
}

fn insert_spec(conn: &Connection, name: &str, spec: &StoredSpec) -> PortResult<()> {
    let (dead_letter_queue, max_receives) = spec.dead_letter.clone().unzip();
    cached(
        conn,
        "INSERT INTO queue_queues (name, visibility_timeout_ms, dead_letter_queue, max_receives)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        name,
        spec.visibility_timeout_ms,
        dead_letter_queue,
        max_receives
    ])
    .map_err(sqlite_error)?;
    Ok(())
}

/// Checks before it writes, as `Db::write` requires: a conflicting declaration creates nothing.
fn declare(conn: &Connection, name: &str, declared: &StoredSpec) -> PortResult<()> {
    let existing = load_spec(conn, name)?;
    if let Some(existing) = &existing
        && existing != declared
    {
        return Err(PortError::AlreadyExists(format!(
            "queue {name} exists with {existing}, not {declared}"
        )));
    }
    if let Some((dead_letter_queue, _)) = &declared.dead_letter
        && load_spec(conn, dead_letter_queue)?.is_none()
    {
        insert_spec(
            conn,
            dead_letter_queue,
            &StoredSpec::default_for_dead_letter_queue(),
        )?;
    }
    if existing.is_none() {
        insert_spec(conn, name, declared)?;
    }
    Ok(())
}

/// A message ready for its row, prepared before the database is taken.
struct NewMessage {
    id: String,
    body: String,
    attributes: String,
    delay_ms: i64,
}

impl NewMessage {
    fn new(message: OutMessage) -> PortResult<Self> {
        let attributes = serde_json::to_string(&message.attributes)
            .map_err(|e| PortError::Other(format!("cannot encode message attributes: {e}")))?;
        Ok(Self {
            id: uuid::Uuid::new_v4().simple().to_string(),
            body: message.body,
            attributes,
            delay_ms: millis(message.delay),
        })
    }
}

fn insert_messages(conn: &Connection, queue: &str, messages: &[NewMessage]) -> PortResult<()> {
    require_spec(conn, queue)?;
    let now = now_ms();
    let mut insert = cached(
        conn,
        "INSERT INTO queue_messages (id, queue, body, attributes, visible_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for message in messages {
        insert
            .execute(params![
                message.id,
                queue,
                message.body,
                message.attributes,
                now + message.delay_ms
            ])
            .map_err(sqlite_error)?;
    }
    Ok(())
}

/// What one look at a queue found.
struct Claim {
    received: Vec<Received>,
    /// How soon the next invisible message becomes visible, if any is waiting.
    next_visible_in: Option<Duration>,
}

/// A visible message, read before it is claimed or moved.
struct Candidate {
    seq: i64,
    id: String,
    body: String,
    attributes: String,
    visible_at_ms: i64,
    receive_count: u32,
}

/// Claims up to `max` visible messages, oldest first; moves the ones past their dead-letter policy instead.
fn claim_visible(conn: &Connection, queue: &str, max: u32) -> PortResult<Claim> {
    let spec = require_spec(conn, queue)?;
    let now = now_ms();
    let mut received = Vec::new();
    let mut claimed = std::collections::HashSet::new();
    // Keyset position over (visible_at_ms, seq), so dead-lettered messages do not eat into `max`.
    let mut after = (i64::MIN, i64::MIN);
    while received.len() < max as usize {
        let candidates =
            visible_candidates(conn, queue, now, after, max as usize - received.len())?;
        if candidates.is_empty() {
            break;
        }
        for candidate in candidates {
            after = (candidate.visible_at_ms, candidate.seq);
            // A zero visibility timeout leaves a claimed message visible; never return it twice at once.
            if !claimed.insert(candidate.seq) {
                continue;
            }
            match &spec.dead_letter {
                Some((dead_letter_queue, max_receives))
                    if candidate.receive_count >= *max_receives =>
                {
                    move_to_dead_letter_queue(conn, candidate.seq, dead_letter_queue, now)?;
                }
                _ => received.push(mark_received(
                    conn,
                    queue,
                    candidate,
                    now + spec.visibility_timeout_ms,
                )?),
            }
        }
    }
    let next_visible_in = next_visible_at(conn, queue, now)?
        .map(|at| Duration::from_millis(u64::try_from(at - now).unwrap_or_default()));
    Ok(Claim {
        received,
        next_visible_in,
    })
}

fn visible_candidates(
    conn: &Connection,
    queue: &str,
    now: i64,
    after: (i64, i64),
    limit: usize,
) -> PortResult<Vec<Candidate>> {
    let mut select = conn
        .prepare_cached(
            "SELECT seq, id, body, attributes, visible_at_ms, receive_count FROM queue_messages
             WHERE queue = ?1 AND visible_at_ms <= ?2 AND (visible_at_ms, seq) > (?3, ?4)
             ORDER BY visible_at_ms, seq LIMIT ?5",
        )
        .map_err(sqlite_error)?;
    let rows = select
        .query_map(params![queue, now, after.0, after.1, limit as i64], |row| {
            Ok(Candidate {
                seq: row.get(0)?,
                id: row.get(1)?,
                body: row.get(2)?,
                attributes: row.get(3)?,
                visible_at_ms: row.get(4)?,
                receive_count: row.get(5)?,
            })
        })
        .map_err(sqlite_error)?;
    rows.collect::<Result<_, _>>().map_err(sqlite_error)
}

fn mark_received(
    conn: &Connection,
    queue: &str,
    candidate: Candidate,
    visible_at_ms: i64,
) -> PortResult<Received> {
    let attributes: BTreeMap<String, String> = serde_json::from_str(&candidate.attributes)
        .map_err(|e| {
            PortError::Other(format!(
                "message {} in queue {queue} has unreadable attributes: {e}",
                candidate.id
            ))
        })?;
    let receipt = new_receipt(&candidate.id);
    cached(
        conn,
        "UPDATE queue_messages SET receive_count = receive_count + 1, receipt = ?1, visible_at_ms = ?2
         WHERE seq = ?3",
    )?
    .execute(params![receipt, visible_at_ms, candidate.seq])
    .map_err(sqlite_error)?;
    Ok(Received {
        id: candidate.id,
        receipt,
        body: candidate.body,
        receive_count: candidate.receive_count + 1,
        attributes,
    })
}

/// The message keeps its receive count, as on SQS; it is visible in the dead-letter queue at once.
fn move_to_dead_letter_queue(
    conn: &Connection,
    seq: i64,
    dead_letter_queue: &str,
    now: i64,
) -> PortResult<()> {
    cached(
        conn,
        "UPDATE queue_messages SET queue = ?1, visible_at_ms = ?2, receipt = NULL WHERE seq = ?3",
    )?
    .execute(params![dead_letter_queue, now, seq])
    .map_err(sqlite_error)?;
    Ok(())
}

fn next_visible_at(conn: &Connection, queue: &str, now: i64) -> PortResult<Option<i64>> {
    cached(
        conn,
        "SELECT MIN(visible_at_ms) FROM queue_messages WHERE queue = ?1 AND visible_at_ms > ?2",
    )?
    .query_row(params![queue, now], |row| row.get(0))
    .map_err(sqlite_error)
}

/// A receipt names its message, so that a stale receipt can be told apart from one of a deleted message.
fn new_receipt(message_id: &str) -> String {
    format!("{message_id}.{}", uuid::Uuid::new_v4().simple())
}

fn message_id_of(receipt: &str) -> Option<&str> {
    let (id, nonce) = receipt.split_once('.')?;
    let well_formed = uuid::Uuid::try_parse(id).is_ok() && uuid::Uuid::try_parse(nonce).is_ok();
    well_formed.then_some(id)
}

/// What a receipt refers to in a queue.
enum ReceiptState {
    /// The latest receipt of a message still in the queue.
    Current { seq: i64 },
    /// The message is in the queue but has been received again since.
    Stale { message_id: String },
    /// The message has left the queue (deleted, or moved to its dead-letter queue).
    Gone { message_id: String },
    /// Not a receipt this engine issued.
    Unknown,
}

fn receipt_state(conn: &Connection, queue: &str, receipt: &str) -> PortResult<ReceiptState> {
    let current: Option<i64> = cached(
        conn,
        "SELECT seq FROM queue_messages WHERE receipt = ?1 AND queue = ?2",
    )?
    .query_row(params![receipt, queue], |row| row.get(0))
    .optional()
    .map_err(sqlite_error)?;
    if let Some(seq) = current {
        return Ok(ReceiptState::Current { seq });
    }
    let Some(message_id) = message_id_of(receipt) else {
        return Ok(ReceiptState::Unknown);
    };
    let present: Option<i64> = cached(
        conn,
        "SELECT seq FROM queue_messages WHERE id = ?1 AND queue = ?2",
    )?
    .query_row(params![message_id, queue], |row| row.get(0))
    .optional()
    .map_err(sqlite_error)?;
    let message_id = message_id.to_string();
    Ok(match present {
        Some(_) => ReceiptState::Stale { message_id },
        None => ReceiptState::Gone { message_id },
    })
}

fn stale(queue: &str, message_id: &str) -> PortError {
    PortError::NotFound(format!(
        "receipt of message {message_id} in queue {queue}: the message was received again since; only the latest receipt is valid"
    ))
}

fn unknown(queue: &str, receipt: &str) -> PortError {
    PortError::NotFound(format!(
        "receipt {receipt:?}: no message in queue {queue} was received with it"
    ))
}

/// Deleting a message that has already left the queue succeeds, as on SQS.
fn delete_received(conn: &Connection, queue: &str, receipt: &str) -> PortResult<()> {
    require_spec(conn, queue)?;
    match receipt_state(conn, queue, receipt)? {
        ReceiptState::Current { seq } => {
            cached(conn, "DELETE FROM queue_messages WHERE seq = ?1")?
                .execute(params![seq])
                .map_err(sqlite_error)?;
        }
        ReceiptState::Gone { .. } => {}
        ReceiptState::Stale { message_id } => return Err(stale(queue, &message_id)),
        ReceiptState::Unknown => return Err(unknown(queue, receipt)),
    }
    Ok(())
}

fn change_visibility(
    conn: &Connection,
    queue: &str,
    receipt: &str,
    timeout: Duration,
) -> PortResult<()> {
    require_spec(conn, queue)?;
    match receipt_state(conn, queue, receipt)? {
        ReceiptState::Current { seq } => {
            cached(
                conn,
                "UPDATE queue_messages SET visible_at_ms = ?1 WHERE seq = ?2",
            )?
            .execute(params![now_ms() + millis(timeout), seq])
            .map_err(sqlite_error)?;
        }
        ReceiptState::Gone { message_id } => {
            return Err(PortError::NotFound(format!(
                "message {message_id} is no longer in queue {queue}"
            )));
        }
        ReceiptState::Stale { message_id } => return Err(stale(queue, &message_id)),
        ReceiptState::Unknown => return Err(unknown(queue, receipt)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_ports::queue::MAX_RECEIVE;

    async fn queue_with(visibility_timeout: Duration) -> (SqliteQueue, String) {
        let queue = SqliteQueue::new(Db::in_memory().expect("in-memory database")).expect("schema");
        let name = "jobs".to_string();
        let spec = QueueSpec {
            name: name.clone(),
            visibility_timeout,
            dead_letter: None,
        };
        queue.declare(&spec).await.expect("declare");
        (queue, name)
    }

    async fn receive_now(queue: &SqliteQueue, name: &str) -> Vec<Received> {
        queue
            .receive(name, MAX_RECEIVE, Duration::ZERO)
            .await
            .expect("receive")
    }

    #[tokio::test]
    async fn a_stale_receipt_neither_deletes_nor_changes_the_message() {
        let (queue, name) = queue_with(Duration::ZERO).await;
        queue
            .send_batch(&name, vec![OutMessage::new("twice")])
            .await
            .expect("send");
        let first = receive_now(&queue, &name).await.remove(0);
        let second = receive_now(&queue, &name).await.remove(0);
        assert_eq!(second.id, first.id);

        let delete = queue.delete(&name, &first.receipt).await;
        assert!(
            matches!(&delete, Err(PortError::NotFound(why)) if why.contains("latest receipt")),
            "{delete:?}"
        );
        let change = queue
            .change_visibility(&name, &first.receipt, Duration::from_secs(60))
            .await;
        assert!(
            matches!(&change, Err(PortError::NotFound(why)) if why.contains("latest receipt")),
            "{change:?}"
        );

        let third = receive_now(&queue, &name).await;
        assert_eq!(
            third.len(),
            1,
            "the message survived the stale delete and stayed visible"
        );
        queue
            .delete(&name, &third[0].receipt)
            .await
            .expect("the latest receipt deletes");
        assert!(receive_now(&queue, &name).await.is_empty());
    }

    #[tokio::test]
    async fn a_receipt_this_engine_never_issued_is_not_found() {
        let (queue, name) = queue_with(Duration::from_secs(30)).await;
        let delete = queue.delete(&name, "not-a-receipt").await;
        assert!(
            matches!(&delete, Err(PortError::NotFound(why)) if why.contains("not-a-receipt")),
            "{delete:?}"
        );
    }

    #[tokio::test]
    async fn a_zero_visibility_timeout_never_returns_one_message_twice_in_one_receive() {
        let (queue, name) = queue_with(Duration::ZERO).await;
        let messages = vec![OutMessage::new("a"), OutMessage::new("b")];
        queue.send_batch(&name, messages).await.expect("send");
        let bodies: Vec<String> = receive_now(&queue, &name)
            .await
            .into_iter()
            .map(|m| m.body)
            .collect();
        assert_eq!(bodies, ["a", "b"]);
    }

    #[tokio::test]
    async fn receive_returns_messages_in_the_order_they_became_visible() {
        let (queue, name) = queue_with(Duration::from_secs(30)).await;
        let messages = vec![
            OutMessage::new("later").delayed(Duration::from_millis(200)),
            OutMessage::new("first"),
            OutMessage::new("second"),
        ];
        queue.send_batch(&name, messages).await.expect("send");
        let first: Vec<String> = receive_now(&queue, &name)
            .await
            .into_iter()
            .map(|m| m.body)
            .collect();
        assert_eq!(first, ["first", "second"]);
        let later = queue
            .receive(&name, MAX_RECEIVE, Duration::from_secs(5))
            .await
            .expect("receive");
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].body, "later");
    }

    #[tokio::test]
    async fn dead_letter_moves_do_not_count_against_max() {
        let queue = SqliteQueue::new(Db::in_memory().expect("in-memory database")).expect("schema");
        let spec = QueueSpec {
            name: "work".into(),
            visibility_timeout: Duration::ZERO,
            dead_letter: Some(tern_ports::DeadLetter {
                queue: "dead".into(),
                max_receives: 1,
            }),
        };
        queue.declare(&spec).await.expect("declare");
        queue
            .send_batch("work", vec![OutMessage::new("poison")])
            .await
            .expect("send");
        assert_eq!(receive_now(&queue, "work").await.len(), 1);
        queue
            .send_batch("work", vec![OutMessage::new("fresh")])
            .await
            .expect("send");

        let received = queue
            .receive("work", 1, Duration::ZERO)
            .await
            .expect("receive");
        let bodies: Vec<&str> = received.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(
            bodies,
            ["fresh"],
            "the poison message moved and the next one was still returned"
        );
        let dead = receive_now(&queue, "dead").await;
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].body, "poison");
    }

    #[tokio::test]
    async fn invalid_declarations_are_refused() {
        let queue = SqliteQueue::new(Db::in_memory().expect("in-memory database")).expect("schema");
        let bad_name = QueueSpec {
            name: "has space".into(),
            visibility_timeout: Duration::ZERO,
            dead_letter: None,
        };
        assert!(matches!(
            queue.declare(&bad_name).await,
            Err(PortError::Invalid(_))
        ));
        let own_dead_letter = QueueSpec {
            name: "loop".into(),
            visibility_timeout: Duration::ZERO,
            dead_letter: Some(tern_ports::DeadLetter {
                queue: "loop".into(),
                max_receives: 3,
            }),
        };
        assert!(matches!(
            queue.declare(&own_dead_letter).await,
            Err(PortError::Invalid(_))
        ));
    }
}
