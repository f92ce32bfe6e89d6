//! Storing accepted events, checked on the embedded adapters: dedupe, trait merging, identity linking,
//! groups, timezone and context, retries, lake messages, tenant isolation and the number of port calls.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use tern_domain::DomainError;
use tern_domain::ingest::store::MAX_LAKE_MESSAGE_BYTES;
use tern_domain::ingest::{Accepted, Event, LakeBatch, Subject, accept};
use tern_domain::layout;
use tern_domain::profile::{TraitFilter, UserView, get_user, list_users};
use tern_embedded::Db;
use tern_embedded::queue::SqliteQueue;
use tern_embedded::table::SqliteTable;
use tern_ports::{
    Item, Key, Page, PortError, PortResult, Ports, Query, Queue, QueueSpec, Table, TransactOp,
    Update, VirtualClock, WriteOp,
};

const WS: &str = "ws_a";
const START: &str = "2026-03-01T09:00:00Z";

/// The embedded table with every call counted, and optional faults injected.
struct Instrumented {
    inner: SqliteTable,
    calls: AtomicUsize,
    /// Fails the next transaction that holds an update (the profile step), once.
    fail_next_update_transaction: AtomicBool,
    /// Before the next transaction of puts, writes these dedupe markers as a concurrent request would.
    race_markers: Mutex<Vec<Key>>,
}

impl Instrumented {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn count(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Table for Instrumented {
    async fn get(&self, key: &Key) -> PortResult<Option<Item>> {
        self.count();
        self.inner.get(key).await
    }
    async fn batch_get(&self, keys: &[Key]) -> PortResult<Vec<Item>> {
        self.count();
        self.inner.batch_get(keys).await
    }
    async fn put(&self, item: Item, condition: Option<tern_ports::Condition>) -> PortResult<()> {
        self.count();
        self.inner.put(item, condition).await
    }
    async fn update(
        &self,
        key: &Key,
        update: Update,
        condition: Option<tern_ports::Condition>,
    ) -> PortResult<Item> {
        self.count();
        self.inner.update(key, update, condition).await
    }
    async fn delete(
        &self,
        key: &Key,
        condition: Option<tern_ports::Condition>,
    ) -> PortResult<Option<Item>> {
        self.count();
        self.inner.delete(key, condition).await
    }
    async fn query(&self, query: Query) -> PortResult<Page> {
        self.count();
        self.inner.query(query).await
    }
    async fn batch_write(&self, ops: Vec<WriteOp>) -> PortResult<()> {
        self.count();
        self.inner.batch_write(ops).await
    }
    async fn transact_write(&self, ops: Vec<TransactOp>) -> PortResult<()> {
        self.count();
        let has_update = ops.iter().any(|op| matches!(op, TransactOp::Update { .. }));
        if has_update
            && self
                .fail_next_update_transaction
                .swap(false, Ordering::SeqCst)
        {
            return Err(PortError::Unavailable("injected failure".into()));
        }
        let racing: Vec<Key> = std::mem::take(&mut *self.race_markers.lock().unwrap());
        for key in racing {
            self.inner.put(Item::new(&key), None).await?;
        }
        self.inner.transact_write(ops).await
    }
}

struct Setup {
    ports: Ports,
    table: Arc<Instrumented>,
    queue: Arc<SqliteQueue>,
    clock: Arc<VirtualClock>,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::in_memory().unwrap();
    let clock = Arc::new(VirtualClock::new(START.parse().unwrap()));
    let table = Arc::new(Instrumented {
        inner: SqliteTable::new(db.clone())
            .unwrap()
            .with_clock(clock.clone()),
        calls: AtomicUsize::new(0),
        fail_next_update_transaction: AtomicBool::new(false),
        race_markers: Mutex::new(Vec::new()),
    });
    let queue = Arc::new(SqliteQueue::new(db.clone()).unwrap());
    queue
        .declare(&QueueSpec {
            name: "lake".into(),
            visibility_timeout: Duration::from_secs(30),
            dead_letter: None,
        })
        .await
        .unwrap();
    let ports = common::embedded_ports(dir.path(), db, table.clone(), queue.clone(), clock.clone());
    Setup {
        ports,
        table,
        queue,
        clock,
        _dir: dir,
    }
}

impl Setup {
    async fn accept(&self, events: Vec<Event>) -> Accepted {
        accept(&self.ports, WS, events).await.unwrap()
    }

    async fn user(&self, user_id: &str) -> UserView {
        get_user(self.ports.table.as_ref(), WS, user_id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("user {user_id} not found"))
    }

    /// Every lake message sent so far, removed from the queue.
    async fn lake_messages(&self) -> Vec<String> {
        let mut bodies = Vec::new();
        loop {
            let received = self
                .queue
                .receive("lake", 10, Duration::ZERO)
                .await
                .unwrap();
            if received.is_empty() {
                return bodies;
            }
            for message in received {
                self.queue.delete("lake", &message.receipt).await.unwrap();
                bodies.push(message.body);
            }
        }
    }

    async fn lake_events(&self) -> Vec<Event> {
        self.lake_messages()
            .await
            .iter()
            .flat_map(|body| serde_json::from_str::<LakeBatch>(body).unwrap().events)
            .collect()
    }
}

/// An event of `kind` at `seconds` after the start, with the given Segment fields.
fn event(kind: &str, message_id: &str, seconds: i64, fields: Value) -> Event {
    let at = START.parse::<Timestamp>().unwrap() + SignedDuration::from_secs(seconds);
    let mut value = json!({
        "messageId": message_id,
        "type": kind,
        "timestamp": at.to_string(),
        "receivedAt": at.to_string(),
    });
    value
        .as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    serde_json::from_value(value).unwrap()
}

fn track(message_id: &str, seconds: i64, subject: Value) -> Event {
    let mut fields = subject;
    fields["event"] = json!("Viewed");
    event("track", message_id, seconds, fields)
}

fn message_ids(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.message_id.as_str()).collect()
}

#[tokio::test]
async fn a_message_id_is_stored_once_within_and_across_batches() {
    let setup = setup().await;
    let first = vec![
        track("m1", 1, json!({"userId": "u1"})),
        track("m1", 2, json!({"userId": "u1"})),
        track("m2", 3, json!({"userId": "u1"})),
    ];
    assert_eq!(
        setup.accept(first).await,
        Accepted {
            stored: 2,
            duplicates: 1
        }
    );
    let second = vec![
        track("m1", 4, json!({"userId": "u1"})),
        track("m3", 5, json!({"userId": "u1"})),
    ];
    assert_eq!(
        setup.accept(second).await,
        Accepted {
            stored: 1,
            duplicates: 1
        }
    );
    let user = setup.user("u1").await;
    assert_eq!(message_ids(&user.recent_events), vec!["m3", "m2", "m1"]);
    // The first copy of m1 is the one kept.
    assert_eq!(
        user.recent_events[2].timestamp,
        track("m1", 1, json!({})).timestamp
    );
    assert_eq!(
        message_ids(&setup.lake_events().await),
        vec!["m1", "m2", "m3"]
    );
}

#[tokio::test]
async fn dedupe_lasts_seven_days_and_an_hour_and_hot_events_ninety_days() {
    let setup = setup().await;
    setup
        .accept(vec![track("m1", 0, json!({"userId": "u1"}))])
        .await;
    setup.clock.advance(SignedDuration::from_hours(7 * 24));
    let within = setup
        .accept(vec![track("m1", 0, json!({"userId": "u1"}))])
        .await;
    assert_eq!(within.duplicates, 1);
    setup.clock.advance(SignedDuration::from_hours(2));
    let after = setup
        .accept(vec![track("m1", 0, json!({"userId": "u1"}))])
        .await;
    assert_eq!(
        after.stored, 1,
        "the marker expired after 7 days and 1 hour"
    );
    assert_eq!(setup.user("u1").await.recent_events.len(), 1);
    setup.clock.advance(SignedDuration::from_hours(90 * 24));
    let user = setup.user("u1").await;
    assert!(
        user.recent_events.is_empty(),
        "hot copies expire after 90 days"
    );
}

#[tokio::test]
async fn identify_merges_top_level_traits_in_arrival_order_and_null_removes() {
    let setup = setup().await;
    setup
        .accept(vec![
            event("identify", "i1", 1, json!({"userId": "u1", "traits": {"plan": "free", "name": "Ada", "age": 36, "address": {"city": "London", "zip": "N1"}}})),
            event("identify", "i2", 2, json!({"userId": "u1", "traits": {"plan": "pro"}})),
        ])
        .await;
    // Arrival order wins, not timestamps: this batch is later though its event is older.
    setup
        .accept(vec![event(
            "identify",
            "i3",
            -100,
            json!({"userId": "u1", "traits": {"plan": "enterprise", "age": null, "address": {"city": "Paris"}, "tags": ["a", 1]}}),
        )])
        .await;
    let user = setup.user("u1").await;
    assert_eq!(
        Value::Object(user.traits),
        json!({"plan": "enterprise", "name": "Ada", "address": {"city": "Paris"}, "tags": ["a", 1]})
    );
    let start: Timestamp = START.parse().unwrap();
    assert_eq!(user.first_seen, Some(start + SignedDuration::from_secs(1)));
}

#[tokio::test]
async fn identify_with_both_ids_links_the_anonymous_history_to_the_user() {
    let setup = setup().await;
    setup
        .accept(vec![
            track("a-view", 1, json!({"anonymousId": "anon-1"})),
            event(
                "identify",
                "a-id",
                2,
                json!({"anonymousId": "anon-1", "traits": {"plan": "free", "referrer": "ad"}}),
            ),
        ])
        .await;
    setup
        .accept(vec![
            event(
                "identify",
                "u-id",
                10,
                json!({"userId": "u1", "anonymousId": "anon-1", "traits": {"plan": "pro"}}),
            ),
            track("late-anon", 11, json!({"anonymousId": "anon-1"})),
        ])
        .await;
    let user = setup.user("u1").await;
    assert_eq!(
        Value::Object(user.traits.clone()),
        json!({"plan": "pro", "referrer": "ad"})
    );
    assert_eq!(user.identities.user_id, "u1");
    assert_eq!(user.identities.anonymous_ids, vec!["anon-1"]);
    assert_eq!(
        message_ids(&user.recent_events),
        vec!["late-anon", "u-id", "a-id", "a-view"]
    );
    assert_eq!(
        user.first_seen,
        Some(START.parse::<Timestamp>().unwrap() + SignedDuration::from_secs(1)),
        "the anonymous visitor's first visit"
    );

    // A later batch with only the anonymous id is stored under the user.
    setup
        .accept(vec![track(
            "next-day",
            90_000,
            json!({"anonymousId": "anon-1"}),
        )])
        .await;
    let user = setup.user("u1").await;
    assert_eq!(user.recent_events[0].message_id, "next-day");
    let anonymous_events = setup
        .ports
        .table
        .query(
            Query::new(layout::profile_pk(
                WS,
                tern_domain::ingest::Subject::Anonymous("anon-1"),
            ))
            .prefix(layout::HOT_EVENT_SK_PREFIX),
        )
        .await
        .unwrap();
    assert_eq!(
        anonymous_events.items.len(),
        2,
        "only the events from before the link"
    );
}

#[tokio::test]
async fn alias_links_the_previous_id() {
    let setup = setup().await;
    setup
        .accept(vec![track("before", 1, json!({"anonymousId": "old-id"}))])
        .await;
    setup
        .accept(vec![event(
            "alias",
            "alias",
            2,
            json!({"userId": "u1", "previousId": "old-id"}),
        )])
        .await;
    setup
        .accept(vec![track("after", 3, json!({"anonymousId": "old-id"}))])
        .await;
    let user = setup.user("u1").await;
    assert_eq!(user.identities.anonymous_ids, vec!["old-id"]);
    assert_eq!(
        message_ids(&user.recent_events),
        vec!["after", "alias", "before"]
    );
}

#[tokio::test]
async fn groups_keep_account_traits_and_membership_both_ways() {
    let setup = setup().await;
    setup
        .accept(vec![
            event(
                "group",
                "g1",
                1,
                json!({"userId": "u1", "groupId": "acme", "traits": {"name": "Acme", "seats": 5}}),
            ),
            event(
                "group",
                "g2",
                2,
                json!({"userId": "u2", "groupId": "acme", "traits": {"seats": 7, "name": null}}),
            ),
            event(
                "group",
                "g3",
                3,
                json!({"userId": "u1", "groupId": "initech"}),
            ),
        ])
        .await;
    let u1 = setup.user("u1").await;
    let groups: Vec<(&str, Value)> = u1
        .groups
        .iter()
        .map(|g| (g.group_id.as_str(), Value::Object(g.traits.clone())))
        .collect();
    assert_eq!(
        groups,
        vec![("acme", json!({"seats": 7})), ("initech", json!({}))]
    );
    assert_eq!(setup.user("u2").await.groups.len(), 1);
    let members = setup
        .ports
        .table
        .query(Query::new(layout::group_pk(WS, "acme")).prefix(layout::GROUP_MEMBER_SK_PREFIX))
        .await
        .unwrap();
    let member_ids: Vec<&str> = members
        .items
        .iter()
        .map(|item| item.get_s("user_id").unwrap())
        .collect();
    assert_eq!(member_ids, vec!["u1", "u2"]);
}

#[tokio::test]
async fn timezone_and_the_last_context_are_kept() {
    let setup = setup().await;
    setup
        .accept(vec![
            track("t1", 1, json!({"userId": "u1", "context": {"timezone": "Europe/Berlin", "ip": "10.0.0.1", "locale": "de-DE", "library": {"name": "analytics.js"}}})),
            track("t2", 2, json!({"userId": "u1", "context": {"timezone": "Not/AZone", "ip": "10.0.0.2", "userAgent": "Mozilla/5.0"}})),
        ])
        .await;
    let user = setup.user("u1").await;
    assert_eq!(
        user.timezone.as_deref(),
        Some("Europe/Berlin"),
        "an invalid zone is ignored"
    );
    assert_eq!(
        Value::Object(user.context),
        json!({"timezone": "Not/AZone", "ip": "10.0.0.2", "userAgent": "Mozilla/5.0"})
    );
    setup
        .accept(vec![event(
            "identify",
            "t3",
            3,
            json!({"userId": "u1", "traits": {"timezone": "America/Sao_Paulo"}}),
        )])
        .await;
    assert_eq!(
        setup.user("u1").await.timezone.as_deref(),
        Some("America/Sao_Paulo")
    );
}

#[tokio::test]
async fn a_retried_batch_changes_nothing() {
    let setup = setup().await;
    let batch = vec![
        track("v1", 1, json!({"anonymousId": "anon-1"})),
        event(
            "identify",
            "i1",
            2,
            json!({"userId": "u1", "anonymousId": "anon-1", "traits": {"plan": "pro"}}),
        ),
        event(
            "group",
            "g1",
            3,
            json!({"userId": "u1", "groupId": "acme", "traits": {"name": "Acme"}}),
        ),
    ];
    assert_eq!(setup.accept(batch.clone()).await.stored, 3);
    let before = setup.user("u1").await;
    let lake_before = setup.lake_messages().await.len();
    assert_eq!(lake_before, 1);
    setup.clock.advance(SignedDuration::from_secs(60));
    assert_eq!(
        setup.accept(batch).await,
        Accepted {
            stored: 0,
            duplicates: 3
        }
    );
    assert_eq!(setup.user("u1").await, before);
    assert!(
        setup.lake_messages().await.is_empty(),
        "nothing new for the lake"
    );
}

#[tokio::test]
async fn a_failure_after_the_claim_releases_the_markers_so_the_retry_stores_the_events() {
    let setup = setup().await;
    let batch = vec![event(
        "identify",
        "i1",
        1,
        json!({"userId": "u1", "traits": {"plan": "pro"}}),
    )];
    setup
        .table
        .fail_next_update_transaction
        .store(true, Ordering::SeqCst);
    let error = accept(&setup.ports, WS, batch.clone()).await.unwrap_err();
    assert!(error.to_string().contains("injected failure"), "{error}");
    assert_eq!(
        setup.accept(batch).await,
        Accepted {
            stored: 1,
            duplicates: 0
        }
    );
    let user = setup.user("u1").await;
    assert_eq!(user.traits["plan"], "pro");
    assert_eq!(message_ids(&user.recent_events), vec!["i1"]);
}

#[tokio::test]
async fn a_marker_written_first_by_a_concurrent_request_makes_its_event_a_duplicate() {
    let setup = setup().await;
    *setup.table.race_markers.lock().unwrap() =
        vec![layout::dedupe_key(WS, Subject::User("u1"), "m2")];
    let accepted = setup
        .accept(vec![
            track("m1", 1, json!({"userId": "u1"})),
            track("m2", 2, json!({"userId": "u1"})),
            track("m3", 3, json!({"userId": "u1"})),
        ])
        .await;
    assert_eq!(
        accepted,
        Accepted {
            stored: 2,
            duplicates: 1
        }
    );
    let user = setup.user("u1").await;
    assert_eq!(message_ids(&user.recent_events), vec!["m3", "m1"]);
}

#[tokio::test]
async fn lake_messages_stay_below_the_size_limit_and_hold_every_event_in_order() {
    let setup = setup().await;
    let padding = "x".repeat(30_000);
    let events: Vec<Event> = (0..30)
        .map(|i| {
            let mut e = track(
                &format!("m{i:02}"),
                i,
                json!({"userId": format!("u{}", i % 3)}),
            );
            e.properties.insert("padding".into(), json!(padding));
            e
        })
        .collect();
    setup.accept(events.clone()).await;
    let bodies = setup.lake_messages().await;
    assert!(bodies.len() > 1, "30 × 30 KB needs several messages");
    let mut read_back = Vec::new();
    for body in &bodies {
        assert!(body.len() < MAX_LAKE_MESSAGE_BYTES, "{} bytes", body.len());
        let batch: LakeBatch = serde_json::from_str(body).unwrap();
        assert_eq!(batch.workspace_id, WS);
        read_back.extend(batch.events);
    }
    assert_eq!(read_back, events);
}

#[tokio::test]
async fn workspaces_never_see_each_other() {
    let setup = setup().await;
    setup
        .accept(vec![event(
            "identify",
            "same-id",
            1,
            json!({"userId": "u1", "traits": {"plan": "pro"}}),
        )])
        .await;
    let other = accept(
        &setup.ports,
        "ws_b",
        vec![event(
            "identify",
            "same-id",
            1,
            json!({"userId": "u1", "traits": {"plan": "free"}}),
        )],
    )
    .await
    .unwrap();
    assert_eq!(other.stored, 1, "dedupe is per workspace");
    let table = setup.ports.table.as_ref();
    let a = get_user(table, WS, "u1").await.unwrap().unwrap();
    let b = get_user(table, "ws_b", "u1").await.unwrap().unwrap();
    assert_eq!(
        (a.traits["plan"].clone(), b.traits["plan"].clone()),
        (json!("pro"), json!("free"))
    );
    assert_eq!(get_user(table, "ws_c", "u1").await.unwrap(), None);
    let listed = list_users(table, "ws_c", None, None, 100).await.unwrap();
    assert!(listed.users.is_empty());
}

#[tokio::test]
async fn ids_with_separators_do_not_collide() {
    let setup = setup().await;
    setup
        .accept(vec![
            event(
                "identify",
                "x1",
                1,
                json!({"userId": "a#b", "traits": {"n": 1}}),
            ),
            event(
                "identify",
                "x2",
                1,
                json!({"userId": "a%23b", "traits": {"n": 2}}),
            ),
        ])
        .await;
    assert_eq!(setup.user("a#b").await.traits["n"], 1);
    assert_eq!(setup.user("a%23b").await.traits["n"], 2);
}

#[tokio::test]
async fn a_hundred_events_from_twenty_users_cost_a_handful_of_port_calls() {
    let setup = setup().await;
    let events: Vec<Event> = (0..100)
        .map(|i| {
            let user = format!("u{}", i % 20);
            match i / 20 {
                0 => event("identify", &format!("m{i}"), i, json!({"userId": user, "anonymousId": format!("anon-{user}"), "traits": {"n": i}})),
                1 => event("group", &format!("m{i}"), i, json!({"userId": user, "groupId": "acme", "traits": {"n": i}})),
                2 => track(&format!("m{i}"), i, json!({"anonymousId": format!("anon-{user}"), "context": {"timezone": "Europe/Paris"}})),
                _ => track(&format!("m{i}"), i, json!({"userId": user})),
            }
        })
        .collect();
    let before = setup.table.calls();
    assert_eq!(setup.accept(events.clone()).await.stored, 100);
    let first = setup.table.calls() - before;
    assert!(first <= 10, "{first} table calls for one batch");
    // With the identities linked already, a new batch is cheaper still.
    let next: Vec<Event> = events
        .into_iter()
        .map(|mut e| {
            e.message_id = format!("next-{}", e.message_id);
            e
        })
        .collect();
    let before = setup.table.calls();
    setup.accept(next).await;
    let second = setup.table.calls() - before;
    assert!(
        second <= 7,
        "{second} table calls for a batch with known links"
    );
    let user = setup.user("u7").await;
    assert_eq!(user.traits["n"], 7);
    assert_eq!(user.identities.anonymous_ids, vec!["anon-u7"]);
    assert_eq!(user.recent_events.len(), 10, "5 events of each batch");
}

#[tokio::test]
async fn users_are_listed_across_every_shard_with_one_cursor_and_filtered_by_trait() {
    let setup = setup().await;
    let events: Vec<Event> = (0..30)
        .map(|i| {
            let plan = if i % 3 == 0 { "pro" } else { "free" };
            event(
                "identify",
                &format!("m{i}"),
                i,
                json!({"userId": format!("user-{i:02}"), "traits": {"plan": plan, "seats": i}}),
            )
        })
        .collect();
    setup.accept(events).await;
    setup
        .accept(vec![track("anon", 1, json!({"anonymousId": "visitor"}))])
        .await;
    let table = setup.ports.table.as_ref();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = list_users(table, WS, None, cursor.as_deref(), 7)
            .await
            .unwrap();
        assert!(page.users.len() <= 7);
        seen.extend(page.users.into_iter().map(|u| u.user_id));
        pages += 1;
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(seen.len(), 30, "every user once: {seen:?}");
    assert_eq!(unique.len(), 30);
    assert!(pages >= 5);

    let filter = TraitFilter::parse("plan:pro").unwrap();
    let pro = list_users(table, WS, Some(filter), None, 100)
        .await
        .unwrap();
    let pro_ids: HashSet<String> = pro.users.into_iter().map(|u| u.user_id).collect();
    let expected: HashSet<String> = (0..30).step_by(3).map(|i| format!("user-{i:02}")).collect();
    assert_eq!(pro_ids, expected);
    assert_eq!(pro.next_cursor, None);

    let seats = list_users(
        table,
        WS,
        Some(TraitFilter::parse("seats:12").unwrap()),
        None,
        10,
    )
    .await
    .unwrap();
    assert_eq!(seats.users.len(), 1);
    assert_eq!(seats.users[0].user_id, "user-12");
    assert_eq!(seats.users[0].traits["seats"], 12);
}

#[tokio::test]
async fn a_bad_cursor_or_limit_is_refused_with_its_parameter_named() {
    let setup = setup().await;
    let table = setup.ports.table.as_ref();
    let error = list_users(table, WS, None, Some("garbage"), 10)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DomainError::Invalid { field, .. } if field == "cursor"),
        "{error}"
    );
    for limit in [0, 101] {
        let error = list_users(table, WS, None, None, limit).await.unwrap_err();
        assert!(
            matches!(&error, DomainError::Invalid { field, .. } if field == "limit"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn recent_events_are_the_newest_fifty_and_an_unknown_user_is_none() {
    let setup = setup().await;
    let events: Vec<Event> = (0..60)
        .map(|i| track(&format!("m{i:02}"), i, json!({"userId": "u1"})))
        .collect();
    setup.accept(events).await;
    let user = setup.user("u1").await;
    assert_eq!(user.recent_events.len(), 50);
    assert_eq!(user.recent_events[0].message_id, "m59");
    assert_eq!(user.recent_events[49].message_id, "m10");
    assert_eq!(
        get_user(setup.ports.table.as_ref(), WS, "nobody")
            .await
            .unwrap(),
        None
    );
}
