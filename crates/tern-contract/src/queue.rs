//! The queue port's contract cases.
//!
//! Every case declares its own uniquely named queues, so cases run in parallel against one engine and
//! against a long-lived moto server. Waits are kept to a second or two: the cases use one- or two-second
//! visibility timeouts and delays, and poll with short long-polls instead of sleeping.
//!
//! Receipts from an earlier receive ("stale" receipts) are deliberately not part of the contract: SQS
//! accepts them and ignores the delete, moto accepts them and deletes the message, and the embedded
//! engine refuses them with `PortError::NotFound` (its own tests cover that). Callers must therefore
//! always delete with the receipt of their latest receive.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tern_ports::queue::{MAX_RECEIVE, MAX_SEND_BATCH};
use tern_ports::{DeadLetter, OutMessage, PortError, Queue, QueueSpec, Received};
use tokio::time::Instant;

use crate::unique_name;

/// How long a case keeps polling for something it expects before it fails.
const PATIENCE: Duration = Duration::from_secs(10);
/// The long-poll each polling step uses: short, so that cases stay quick.
const POLL_WAIT: Duration = Duration::from_secs(1);
/// A visibility timeout long enough that a message cannot come back during a case by itself.
const LONG_VISIBILITY: Duration = Duration::from_secs(60);

fn spec(name: &str, visibility_timeout: Duration) -> QueueSpec {
    QueueSpec {
        name: name.to_string(),
        visibility_timeout,
        dead_letter: None,
    }
}

async fn declared<T: Queue + ?Sized>(
    port: &T,
    prefix: &str,
    visibility_timeout: Duration,
) -> String {
    let name = unique_name(prefix);
    port.declare(&spec(&name, visibility_timeout))
        .await
        .expect("declare the queue");
    name
}

async fn send_one<T: Queue + ?Sized>(port: &T, queue: &str, message: OutMessage) {
    port.send_batch(queue, vec![message])
        .await
        .expect("send one message");
}

/// Receives until at least one message arrives, failing the case after `PATIENCE`.
async fn receive_some<T: Queue + ?Sized>(port: &T, queue: &str, max: u32) -> Vec<Received> {
    let give_up = Instant::now() + PATIENCE;
    loop {
        let received = port.receive(queue, max, POLL_WAIT).await.expect("receive");
        if !received.is_empty() {
            return received;
        }
        assert!(
            Instant::now() < give_up,
            "no message arrived in queue {queue} within {PATIENCE:?}"
        );
    }
}

/// Receives exactly one message (asking for one).
async fn receive_one<T: Queue + ?Sized>(port: &T, queue: &str) -> Received {
    let mut received = receive_some(port, queue, 1).await;
    assert_eq!(received.len(), 1, "asked for one message, got {received:?}");
    received.remove(0)
}

async fn assert_empty_now<T: Queue + ?Sized>(port: &T, queue: &str, why: &str) {
    let received = port
        .receive(queue, MAX_RECEIVE, Duration::ZERO)
        .await
        .expect("receive");
    assert!(
        received.is_empty(),
        "{why}: queue {queue} returned {received:?}"
    );
}

async fn assert_stays_empty<T: Queue + ?Sized>(port: &T, queue: &str, wait: Duration, why: &str) {
    let received = port
        .receive(queue, MAX_RECEIVE, wait)
        .await
        .expect("receive");
    assert!(
        received.is_empty(),
        "{why}: queue {queue} returned {received:?}"
    );
}

fn attributes(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Declaring the same queue twice is fine, and the queue works afterwards.
pub async fn declare_is_idempotent<T: Queue + ?Sized>(port: &T) {
    let name = unique_name("declare-twice");
    let spec = spec(&name, Duration::from_secs(5));
    port.declare(&spec).await.expect("first declare");
    port.declare(&spec)
        .await
        .expect("second declare of the same spec");

    send_one(port, &name, OutMessage::new("after two declares")).await;
    let received = receive_one(port, &name).await;
    assert_eq!(received.body, "after two declares");
}

/// Declaring an existing queue with another visibility timeout is refused rather than silently ignored.
pub async fn redeclare_with_another_shape_is_refused<T: Queue + ?Sized>(port: &T) {
    let name = declared(port, "declare-shape", Duration::from_secs(5)).await;
    let error = port
        .declare(&spec(&name, Duration::from_secs(7)))
        .await
        .expect_err("a different visibility timeout must be refused");
    assert!(
        matches!(&error, PortError::AlreadyExists(what) if what.contains(&name)),
        "expected AlreadyExists naming {name}, got {error:?}"
    );
}

/// Using a queue that was never declared is `NotFound`, naming the queue.
pub async fn undeclared_queue_is_not_found<T: Queue + ?Sized>(port: &T) {
    let name = unique_name("never-declared");
    let send = port.send_batch(&name, vec![OutMessage::new("lost")]).await;
    assert!(
        matches!(&send, Err(PortError::NotFound(what)) if what.contains(&name)),
        "send to an undeclared queue: expected NotFound naming {name}, got {send:?}"
    );
    let receive = port.receive(&name, 1, Duration::ZERO).await;
    assert!(
        matches!(&receive, Err(PortError::NotFound(what)) if what.contains(&name)),
        "receive from an undeclared queue: expected NotFound naming {name}, got {receive:?}"
    );
}

/// 25 messages (more than one batch of 10) all arrive, with their bodies and attributes intact.
pub async fn sends_any_number_and_receives_them_all<T: Queue + ?Sized>(port: &T) {
    let queue = declared(port, "send-many", LONG_VISIBILITY).await;
    let count = 25;
    let messages: Vec<OutMessage> = (0..count)
        .map(|i| OutMessage {
            body: format!("message {i} with \"quotes\", unicode ✓ and\nnewlines"),
            delay: Duration::ZERO,
            attributes: attributes(&[("index", &i.to_string()), ("kind", "contract")]),
        })
        .collect();
    assert!(
        messages.len() > 2 * MAX_SEND_BATCH,
        "the case must span several batches"
    );
    port.send_batch(&queue, messages.clone())
        .await
        .expect("send 25 messages");

    let mut seen: BTreeMap<String, Received> = BTreeMap::new();
    let give_up = Instant::now() + PATIENCE;
    while seen.len() < count {
        assert!(
            Instant::now() < give_up,
            "only {} of {count} messages arrived: {:?}",
            seen.len(),
            seen.keys()
        );
        let batch = port
            .receive(&queue, MAX_RECEIVE, POLL_WAIT)
            .await
            .expect("receive");
        assert!(
            batch.len() <= MAX_RECEIVE as usize,
            "receive returned {} messages",
            batch.len()
        );
        for message in batch {
            let index = message
                .attributes
                .get("index")
                .cloned()
                .expect("the index attribute survives");
            assert!(
                seen.insert(index, message).is_none(),
                "a message arrived twice within its visibility timeout"
            );
        }
    }

    for (i, sent) in messages.iter().enumerate() {
        let received = &seen[&i.to_string()];
        assert_eq!(received.body, sent.body, "body of message {i}");
        assert_eq!(
            received.attributes, sent.attributes,
            "attributes of message {i}"
        );
        assert_eq!(received.receive_count, 1, "first receive of message {i}");
    }
    let ids: BTreeSet<&str> = seen.values().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), count, "every message has its own id");
    assert_empty_now(port, &queue, "every message is in flight").await;
}

/// Sending nothing is a no-op, not an error.
pub async fn sending_nothing_is_fine<T: Queue + ?Sized>(port: &T) {
    let queue = declared(port, "send-nothing", LONG_VISIBILITY).await;
    port.send_batch(&queue, Vec::new())
        .await
        .expect("an empty send");
    assert_empty_now(port, &queue, "nothing was sent").await;
}

/// A receive never returns more than `max`, and `max` outside 1..=10 is refused.
pub async fn receive_respects_max<T: Queue + ?Sized>(port: &T) {
    let queue = declared(port, "receive-max", LONG_VISIBILITY).await;
    let messages = (0..5).map(|i| OutMessage::new(format!("m{i}"))).collect();
    port.send_batch(&queue, messages).await.expect("send 5");

    let first = receive_some(port, &queue, 3).await;
    assert!(first.len() <= 3, "asked for 3, got {}", first.len());

    for max in [0, MAX_RECEIVE + 1] {
        let result = port.receive(&queue, max, Duration::ZERO).await;
        assert!(
            matches!(result, Err(PortError::Invalid(_))),
            "max {max}: expected Invalid, got {result:?}"
        );
    }
}

/// An empty queue returns nothing, after waiting roughly the requested time (the long-poll).
pub async fn receive_on_empty_queue_waits_then_returns_nothing<T: Queue + ?Sized>(port: &T) {
    let queue = declared(port, "empty", LONG_VISIBILITY).await;
    let wait = Duration::from_secs(1);
    let started = Instant::now();
    let received = port
        .receive(&queue, MAX_RECEIVE, wait)
        .await
        .expect("receive");
    let waited = started.elapsed();
    assert!(received.is_empty(), "an empty queue returned {received:?}");
    assert!(
        waited >= wait.mul_f32(0.8),
        "the long-poll returned after {waited:?}, before its {wait:?} wait"
    );
    assert!(
        waited < wait * 5,
        "the long-poll took {waited:?} for a {wait:?} wait"
    );
}

/// A message sent while a receive is waiting ends the wait early.
pub async fn long_poll_returns_a_message_sent_during_the_wait<T: Queue + ?Sized>(port: &T) {
    let queue = declared(port, "long-poll", LONG_VISIBILITY).await;
    let wait = Duration::from_secs(10);
    let started = Instant::now();
    let (received, ()) = tokio::join!(port.receive(&queue, MAX_RECEIVE, wait), async {
        // Give the receive time to start waiting, so the message arrives during the wait.
        tokio::time::sleep(Duration::from_millis(300)).await;
        send_one(port, &queue, OutMessage::new("while you waited")).await;
    });
    let received = received.expect("receive");
    assert_eq!(received.len(), 1, "the long-poll returned {received:?}");
    assert_eq!(received[0].body, "while you waited");
    assert!(
        started.elapsed() < wait / 2,
        "the long-poll returned only after {:?}",
        started.elapsed()
    );
}

/// A received message stays invisible until its visibility timeout passes, then comes back counted twice.
pub async fn received_message_returns_after_its_visibility_timeout<T: Queue + ?Sized>(port: &T) {
    let queue = declared(port, "visibility", Duration::from_secs(1)).await;
    send_one(port, &queue, OutMessage::new("come back")).await;

    let first = receive_one(port, &queue).await;
    assert_eq!(first.receive_count, 1);
    assert_empty_now(port, &queue, "the message is in flight").await;

    let again = receive_one(port, &queue).await;
    assert_eq!(again.id, first.id, "the same message comes back");
    assert_eq!(again.body, "come back");
    assert_eq!(again.receive_count, 2, "this receive is the second");
    assert_ne!(
        again.receipt, first.receipt,
        "each receive has its own receipt"
    );
}

/// A deleted message never comes back; deleting again is fine; its receipt no longer changes visibility.
pub async fn delete_removes_the_message_for_good<T: Queue + ?Sized>(port: &T) {
    let queue = declared(port, "delete", Duration::from_secs(1)).await;
    send_one(port, &queue, OutMessage::new("handled")).await;

    let received = receive_one(port, &queue).await;
    port.delete(&queue, &received.receipt)
        .await
        .expect("delete");
    assert_stays_empty(
        port,
        &queue,
        Duration::from_secs(2),
        "a deleted message came back after its visibility timeout",
    )
    .await;

    port.delete(&queue, &received.receipt)
        .await
        .expect("deleting again is harmless");
    let change = port
        .change_visibility(&queue, &received.receipt, Duration::ZERO)
        .await;
    assert!(
        matches!(change, Err(PortError::NotFound(_))),
        "changing a deleted message: expected NotFound, got {change:?}"
    );
}

/// Changing the visibility to zero makes the message visible again at once (a retry without waiting).
pub async fn change_visibility_to_zero_makes_it_visible_at_once<T: Queue + ?Sized>(port: &T) {
    let queue = declared(port, "visible-now", LONG_VISIBILITY).await;
    send_one(port, &queue, OutMessage::new("retry me")).await;

    let first = receive_one(port, &queue).await;
    port.change_visibility(&queue, &first.receipt, Duration::ZERO)
        .await
        .expect("change visibility");

    let again = port
        .receive(&queue, MAX_RECEIVE, POLL_WAIT)
        .await
        .expect("receive");
    assert_eq!(again.len(), 1, "the message is visible at once: {again:?}");
    assert_eq!(again[0].id, first.id);
    assert_eq!(again[0].receive_count, 2);
}

/// Changing the visibility extends a message's invisibility past the queue's timeout.
pub async fn change_visibility_extends_the_timeout<T: Queue + ?Sized>(port: &T) {
    let queue = declared(port, "visible-later", Duration::from_secs(1)).await;
    send_one(port, &queue, OutMessage::new("slow work")).await;

    let first = receive_one(port, &queue).await;
    port.change_visibility(&queue, &first.receipt, LONG_VISIBILITY)
        .await
        .expect("change visibility");
    assert_stays_empty(
        port,
        &queue,
        Duration::from_secs(2),
        "the extended message came back after the queue's timeout",
    )
    .await;
}

/// A delayed message is invisible until its delay passes; an undelayed one beside it is not.
pub async fn delayed_message_arrives_after_its_delay<T: Queue + ?Sized>(port: &T) {
    let queue = declared(port, "delay", LONG_VISIBILITY).await;
    let delay = Duration::from_secs(2);
    let sent_at = Instant::now();
    let messages = vec![
        OutMessage::new("later").delayed(delay),
        OutMessage::new("now"),
    ];
    port.send_batch(&queue, messages).await.expect("send");

    let immediate = receive_some(port, &queue, MAX_RECEIVE).await;
    let bodies: Vec<&str> = immediate.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(
        bodies,
        ["now"],
        "only the undelayed message is visible at first"
    );

    let later = receive_one(port, &queue).await;
    assert_eq!(later.body, "later");
    let waited = sent_at.elapsed();
    assert!(
        waited >= delay.mul_f32(0.8),
        "the delayed message arrived after {waited:?}, before its {delay:?} delay"
    );
}

/// With `max_receives` 2, a message received twice without a delete moves to the dead-letter queue.
pub async fn message_moves_to_dead_letter_queue_after_max_receives<T: Queue + ?Sized>(port: &T) {
    let dead_letter_queue = unique_name("dead-letters");
    let queue = unique_name("with-dlq");
    let spec = QueueSpec {
        name: queue.clone(),
        visibility_timeout: LONG_VISIBILITY,
        dead_letter: Some(DeadLetter {
            queue: dead_letter_queue.clone(),
            max_receives: 2,
        }),
    };
    port.declare(&spec)
        .await
        .expect("declare the queue and its dead-letter queue");
    assert_empty_now(
        port,
        &dead_letter_queue,
        "declare creates the dead-letter queue",
    )
    .await;
    send_one(port, &queue, OutMessage::new("poison")).await;

    for expected_count in 1..=2 {
        let received = receive_one(port, &queue).await;
        assert_eq!(received.receive_count, expected_count);
        // A failed attempt: make it visible again at once instead of waiting out the visibility timeout.
        port.change_visibility(&queue, &received.receipt, Duration::ZERO)
            .await
            .expect("release the message");
    }

    assert_stays_empty(
        port,
        &queue,
        POLL_WAIT,
        "a third receive must not return the message",
    )
    .await;
    let dead = receive_one(port, &dead_letter_queue).await;
    assert_eq!(dead.body, "poison");
    assert_empty_now(port, &queue, "the message left the source queue").await;
}

/// Messages that no engine would accept are refused before anything is sent.
pub async fn invalid_messages_are_refused<T: Queue + ?Sized>(port: &T) {
    let queue = declared(port, "invalid", LONG_VISIBILITY).await;
    let too_late = OutMessage::new("too late").delayed(Duration::from_secs(16 * 60));
    let result = port
        .send_batch(&queue, vec![OutMessage::new("fine"), too_late])
        .await;
    assert!(
        matches!(result, Err(PortError::Invalid(_))),
        "a 16-minute delay: expected Invalid, got {result:?}"
    );

    let empty = port.send_batch(&queue, vec![OutMessage::new("")]).await;
    assert!(
        matches!(empty, Err(PortError::Invalid(_))),
        "an empty body: expected Invalid, got {empty:?}"
    );

    assert_empty_now(port, &queue, "a refused batch sends nothing").await;
}

/// Expands every queue case into one `#[tokio::test]` for the given adapter factory: an async expression
/// whose value dereferences to a `Queue`.
#[macro_export]
macro_rules! queue_contract {
    ($factory:expr) => {
        $crate::queue_contract!(@cases $factory;
            declare_is_idempotent,
            redeclare_with_another_shape_is_refused,
            undeclared_queue_is_not_found,
            sends_any_number_and_receives_them_all,
            sending_nothing_is_fine,
            receive_respects_max,
            receive_on_empty_queue_waits_then_returns_nothing,
            long_poll_returns_a_message_sent_during_the_wait,
            received_message_returns_after_its_visibility_timeout,
            delete_removes_the_message_for_good,
            change_visibility_to_zero_makes_it_visible_at_once,
            change_visibility_extends_the_timeout,
            delayed_message_arrives_after_its_delay,
            message_moves_to_dead_letter_queue_after_max_receives,
            invalid_messages_are_refused,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let port = $factory.await;
                $crate::queue::$case(&*port).await;
            }
        )*
    };
}
