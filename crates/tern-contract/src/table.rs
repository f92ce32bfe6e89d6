//! The table port's contract cases.
//!
//! Every case writes under its own partition keys (from `unique_name`), so all cases can share one table.
//! Time-to-live cases use the wall clock, as DynamoDB does: a `ttl` an hour in the past is expired, one an
//! hour ahead is live.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::join_all;
use tern_ports::table::{AttrValue, GSI1_PK, GSI1_SK, MAX_TRANSACT_ITEMS, Number, TTL, VERSION};
use tern_ports::{
    Condition, Cursor, Item, Key, PortError, Query, SortCondition, Table, TransactOp, Update,
    WriteOp,
};

use crate::unique_name;

/// Expands every table case into one `#[tokio::test]` for the adapter that `$factory` (an async expression
/// whose value dereferences to a `Table`) builds afresh for each case.
#[macro_export]
macro_rules! table_contract {
    ($factory:expr) => {
        $crate::table_contract!(@cases $factory;
            get_of_an_absent_item_is_none,
            put_then_get_round_trips_every_attribute_type,
            put_overwrites_the_whole_item,
            put_not_exists_fails_when_the_item_exists,
            put_exists_fails_when_the_item_is_absent,
            put_attr_equals_compares_the_stored_value,
            put_version_matches_gives_optimistic_concurrency,
            put_rejects_an_item_without_a_key,
            update_creates_an_absent_item_and_returns_it,
            update_changes_an_existing_item_and_returns_its_new_state,
            update_honours_conditions,
            update_rejects_changing_the_key,
            concurrent_adds_sum_exactly,
            delete_returns_the_old_item,
            delete_honours_conditions,
            query_by_prefix_reads_only_its_partition,
            query_between_is_inclusive,
            query_comparisons_bound_the_sort_key,
            query_orders_sort_keys_bytewise,
            query_backward_reverses_the_order,
            query_pages_with_limit_and_cursor,
            query_gsi1_is_sparse_and_ordered,
            batch_write_puts_and_deletes_more_than_one_chunk,
            batch_write_keeps_the_last_operation_per_key,
            batch_get_returns_present_items_only,
            transact_write_applies_every_operation,
            transact_write_failure_applies_nothing_and_names_the_failed_operation,
            transact_write_names_every_failed_operation,
            transact_write_rejects_more_than_100_operations,
            transact_write_rejects_two_operations_on_one_item,
            expired_items_are_absent_from_reads,
            expired_items_count_as_absent_for_writes,
        );
    };
    (@cases $factory:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let port = $factory.await;
                $crate::table::$case(&*port).await;
            }
        )+
    };
}

fn partition(case: &str) -> String {
    unique_name(&format!("table-{case}"))
}

fn now_epoch() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn number(text: &str) -> AttrValue {
    AttrValue::N(Number::parse(text).expect("a valid number literal"))
}

async fn put_all<T: Table + ?Sized>(port: &T, items: Vec<Item>) {
    port.batch_write(items.into_iter().map(WriteOp::Put).collect())
        .await
        .expect("batch_write of the fixture");
}

/// Every item of a query, following cursors to the end.
async fn query_all<T: Table + ?Sized>(port: &T, query: Query) -> Vec<Item> {
    let mut items = Vec::new();
    let mut cursor: Option<Cursor> = None;
    for _ in 0..1000 {
        let page = port
            .query(query.clone().after(cursor))
            .await
            .expect("query");
        if let Some(limit) = query.limit {
            assert!(
                page.items.len() <= limit as usize,
                "a page holds at most its limit"
            );
        }
        items.extend(page.items);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return items,
        }
    }
    panic!("query never ran out of pages");
}

fn sort_keys(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .map(|item| {
            item.get_s("sk")
                .expect("every item has a string sk")
                .to_string()
        })
        .collect()
}

async fn sort_keys_of<T: Table + ?Sized>(port: &T, query: Query) -> Vec<String> {
    sort_keys(&query_all(port, query).await)
}

/// A partition holding the sort keys `a#1 a#2 a#3 b#1 b#2 c#1`, each with its position as `n`.
async fn seed_lettered_partition<T: Table + ?Sized>(port: &T, pk: &str) {
    let items = ["a#1", "a#2", "a#3", "b#1", "b#2", "c#1"]
        .iter()
        .enumerate()
        .map(|(n, sk)| Item::new(&Key::new(pk, *sk)).with("n", n as i64))
        .collect();
    put_all(port, items).await;
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|value| value.to_string()).collect()
}

pub async fn get_of_an_absent_item_is_none<T: Table + ?Sized>(port: &T) {
    let pk = partition("get-absent");
    assert_eq!(
        port.get(&Key::new(&pk, "nothing")).await.expect("get"),
        None
    );
}

pub async fn put_then_get_round_trips_every_attribute_type<T: Table + ?Sized>(port: &T) {
    let key = Key::new(partition("round-trip"), "item");
    let nested = BTreeMap::from([
        ("inner".to_string(), AttrValue::from("text")),
        (
            "list".to_string(),
            AttrValue::L(vec![number("1"), AttrValue::Bool(false)]),
        ),
    ]);
    let item = Item::new(&key)
        .with("s", "héllo wörld")
        .with("int", 42)
        .with("negative", -7)
        .with("decimal", number("3.25"))
        .with("big", number("12345678901234567890"))
        .with("bytes", AttrValue::B(vec![0, 1, 254, 255]))
        .with("yes", true)
        .with("nothing", AttrValue::null())
        .with(
            "list",
            AttrValue::L(vec![
                AttrValue::from("a"),
                number("2"),
                AttrValue::M(nested.clone()),
            ]),
        )
        .with("map", AttrValue::M(nested));
    port.put(item.clone(), None).await.expect("put");
    assert_eq!(port.get(&key).await.expect("get"), Some(item));
}

pub async fn put_overwrites_the_whole_item<T: Table + ?Sized>(port: &T) {
    let key = Key::new(partition("overwrite"), "item");
    port.put(Item::new(&key).with("old", "gone").with("kept", 1), None)
        .await
        .expect("first put");
    let replacement = Item::new(&key).with("kept", 2);
    port.put(replacement.clone(), None)
        .await
        .expect("second put");
    assert_eq!(
        port.get(&key).await.expect("get"),
        Some(replacement),
        "a put replaces every attribute"
    );
}

pub async fn put_not_exists_fails_when_the_item_exists<T: Table + ?Sized>(port: &T) {
    let key = Key::new(partition("not-exists"), "item");
    let first = Item::new(&key).with("writer", "first");
    port.put(first.clone(), Some(Condition::NotExists))
        .await
        .expect("put of a new item");
    let second = Item::new(&key).with("writer", "second");
    assert_eq!(
        port.put(second, Some(Condition::NotExists)).await,
        Err(PortError::ConditionFailed)
    );
    assert_eq!(
        port.get(&key).await.expect("get"),
        Some(first),
        "a failed put changes nothing"
    );
}

pub async fn put_exists_fails_when_the_item_is_absent<T: Table + ?Sized>(port: &T) {
    let key = Key::new(partition("exists"), "item");
    assert_eq!(
        port.put(Item::new(&key).with("v", 1), Some(Condition::Exists))
            .await,
        Err(PortError::ConditionFailed)
    );
    assert_eq!(
        port.get(&key).await.expect("get"),
        None,
        "a failed put creates nothing"
    );
    port.put(Item::new(&key).with("v", 1), None)
        .await
        .expect("plain put");
    let replacement = Item::new(&key).with("v", 2);
    port.put(replacement.clone(), Some(Condition::Exists))
        .await
        .expect("put over an existing item");
    assert_eq!(port.get(&key).await.expect("get"), Some(replacement));
}

pub async fn put_attr_equals_compares_the_stored_value<T: Table + ?Sized>(port: &T) {
    let key = Key::new(partition("attr-equals"), "item");
    let absent = port
        .put(
            Item::new(&key),
            Some(Condition::attr_equals("status", "open")),
        )
        .await;
    assert_eq!(
        absent,
        Err(PortError::ConditionFailed),
        "an absent item has no attribute to equal"
    );
    port.put(Item::new(&key).with("status", "open"), None)
        .await
        .expect("plain put");
    let wrong = port
        .put(
            Item::new(&key).with("status", "x"),
            Some(Condition::attr_equals("status", "closed")),
        )
        .await;
    assert_eq!(wrong, Err(PortError::ConditionFailed));
    let wrong_type = port
        .put(
            Item::new(&key),
            Some(Condition::attr_equals("status", AttrValue::from(1))),
        )
        .await;
    assert_eq!(
        wrong_type,
        Err(PortError::ConditionFailed),
        "a number never equals a string"
    );
    let closed = Item::new(&key).with("status", "closed");
    port.put(
        closed.clone(),
        Some(Condition::attr_equals("status", "open")),
    )
    .await
    .expect("matching put");
    assert_eq!(port.get(&key).await.expect("get"), Some(closed));
}

pub async fn put_version_matches_gives_optimistic_concurrency<T: Table + ?Sized>(port: &T) {
    let key = Key::new(partition("version"), "item");
    let v1 = Item::new(&key).with(VERSION, 1).with("data", "one");
    port.put(v1.clone(), Some(Condition::VersionMatches(0)))
        .await
        .expect("version 0 matches an absent item");
    let again = port
        .put(v1.clone(), Some(Condition::VersionMatches(0)))
        .await;
    assert_eq!(
        again,
        Err(PortError::ConditionFailed),
        "version 0 no longer matches"
    );
    let v2 = Item::new(&key).with(VERSION, 2).with("data", "two");
    port.put(v2.clone(), Some(Condition::VersionMatches(1)))
        .await
        .expect("version 1 matches");
    let stale = port
        .put(
            Item::new(&key).with(VERSION, 2).with("data", "stale"),
            Some(Condition::VersionMatches(1)),
        )
        .await;
    assert_eq!(
        stale,
        Err(PortError::ConditionFailed),
        "a stale version is refused"
    );
    assert_eq!(port.get(&key).await.expect("get"), Some(v2));

    let unversioned = Key::new(key.pk.clone(), "unversioned");
    port.put(Item::new(&unversioned).with("data", "x"), None)
        .await
        .expect("plain put");
    port.put(
        Item::new(&unversioned).with(VERSION, 1),
        Some(Condition::VersionMatches(0)),
    )
    .await
    .expect("version 0 matches an item without a version");
}

pub async fn put_rejects_an_item_without_a_key<T: Table + ?Sized>(port: &T) {
    let mut item = Item::default();
    item.set("pk", partition("keyless"));
    item.set("data", "no sort key");
    assert!(
        matches!(port.put(item, None).await, Err(PortError::Invalid(_))),
        "an item needs pk and sk"
    );
}

pub async fn update_creates_an_absent_item_and_returns_it<T: Table + ?Sized>(port: &T) {
    let key = Key::new(partition("update-new"), "item");
    let update = Update::new()
        .set("name", "Ada")
        .add("count", 5i64)
        .set_if_absent("created", 100);
    let returned = port.update(&key, update, None).await.expect("update");
    let expected = Item::new(&key)
        .with("name", "Ada")
        .with("count", 5)
        .with("created", 100);
    assert_eq!(returned, expected);
    assert_eq!(port.get(&key).await.expect("get"), Some(expected));
}

pub async fn update_changes_an_existing_item_and_returns_its_new_state<T: Table + ?Sized>(
    port: &T,
) {
    let key = Key::new(partition("update-existing"), "item");
    let original = Item::new(&key)
        .with("a", "x")
        .with("b", "y")
        .with("count", 1)
        .with("created", 1);
    port.put(original, None).await.expect("put");
    let update = Update::new()
        .set("a", "z")
        .remove("b")
        .add("count", 2i64)
        .add("fresh_counter", -3i64)
        .set_if_absent("created", 999)
        .set_if_absent("first_seen", "now");
    let returned = port.update(&key, update, None).await.expect("update");
    let expected = Item::new(&key)
        .with("a", "z")
        .with("count", 3)
        .with("fresh_counter", -3)
        .with("created", 1)
        .with("first_seen", "now");
    assert_eq!(returned, expected);
    assert_eq!(port.get(&key).await.expect("get"), Some(expected));
}

pub async fn update_honours_conditions<T: Table + ?Sized>(port: &T) {
    let key = Key::new(partition("update-condition"), "item");
    let refused = port
        .update(&key, Update::new().set("v", 1), Some(Condition::Exists))
        .await;
    assert_eq!(refused, Err(PortError::ConditionFailed));
    assert_eq!(
        port.get(&key).await.expect("get"),
        None,
        "a refused update creates nothing"
    );

    let created = port.update(
        &key,
        Update::new().set(VERSION, 1).set("status", "open"),
        Some(Condition::NotExists),
    );
    created.await.expect("create when absent");
    let bumped = port
        .update(
            &key,
            Update::new().set(VERSION, 2).add("edits", 1i64),
            Some(Condition::VersionMatches(1)),
        )
        .await
        .expect("update at the expected version");
    assert_eq!(bumped.get_i64(VERSION), Some(2));
    let stale = port.update(
        &key,
        Update::new().set(VERSION, 2).add("edits", 1i64),
        Some(Condition::VersionMatches(1)),
    );
    assert_eq!(stale.await, Err(PortError::ConditionFailed));
    let closed = port
        .update(
            &key,
            Update::new().set("status", "closed"),
            Some(Condition::attr_equals("status", "open")),
        )
        .await
        .expect("update when status is open");
    let expected = Item::new(&key)
        .with(VERSION, 2)
        .with("status", "closed")
        .with("edits", 1);
    assert_eq!(closed, expected);
    let twice = port.update(
        &key,
        Update::new().set("status", "x"),
        Some(Condition::attr_equals("status", "open")),
    );
    assert_eq!(twice.await, Err(PortError::ConditionFailed));
    assert_eq!(
        port.get(&key).await.expect("get"),
        Some(expected),
        "refused updates change nothing"
    );
}

pub async fn update_rejects_changing_the_key<T: Table + ?Sized>(port: &T) {
    let key = Key::new(partition("update-key"), "item");
    port.put(Item::new(&key), None).await.expect("put");
    let result = port
        .update(&key, Update::new().set("sk", "other"), None)
        .await;
    assert!(
        matches!(result, Err(PortError::Invalid(_))),
        "the key is not an updatable attribute: {result:?}"
    );
}

pub async fn concurrent_adds_sum_exactly<T: Table + ?Sized>(port: &T) {
    let key = Key::new(partition("concurrent-add"), "counter");
    let adds = (0..20).map(|_| {
        port.update(
            &key,
            Update::new().add("count", 1i64).add("total", 3i64),
            None,
        )
    });
    for result in join_all(adds).await {
        result.expect("concurrent add");
    }
    let item = port
        .get(&key)
        .await
        .expect("get")
        .expect("the counter exists");
    assert_eq!(item.get_i64("count"), Some(20));
    assert_eq!(item.get_i64("total"), Some(60));
}

pub async fn delete_returns_the_old_item<T: Table + ?Sized>(port: &T) {
    let key = Key::new(partition("delete"), "item");
    assert_eq!(
        port.delete(&key, None).await.expect("delete of nothing"),
        None
    );
    let item = Item::new(&key).with("data", "x");
    port.put(item.clone(), None).await.expect("put");
    assert_eq!(port.delete(&key, None).await.expect("delete"), Some(item));
    assert_eq!(port.get(&key).await.expect("get"), None);
}

pub async fn delete_honours_conditions<T: Table + ?Sized>(port: &T) {
    let key = Key::new(partition("delete-condition"), "item");
    assert_eq!(
        port.delete(&key, Some(Condition::Exists)).await,
        Err(PortError::ConditionFailed)
    );
    let item = Item::new(&key).with("status", "open");
    port.put(item.clone(), None).await.expect("put");
    let refused = port
        .delete(&key, Some(Condition::attr_equals("status", "closed")))
        .await;
    assert_eq!(refused, Err(PortError::ConditionFailed));
    assert_eq!(
        port.get(&key).await.expect("get"),
        Some(item.clone()),
        "a refused delete keeps the item"
    );
    let deleted = port
        .delete(&key, Some(Condition::attr_equals("status", "open")))
        .await
        .expect("delete");
    assert_eq!(deleted, Some(item));
    assert_eq!(port.get(&key).await.expect("get"), None);
}

pub async fn query_by_prefix_reads_only_its_partition<T: Table + ?Sized>(port: &T) {
    let pk = partition("query-prefix");
    seed_lettered_partition(port, &pk).await;
    // A partition whose key extends this one's must stay out of its queries.
    put_all(port, vec![Item::new(&Key::new(format!("{pk}x"), "a#9"))]).await;
    assert_eq!(
        sort_keys_of(port, Query::new(&pk).prefix("a#")).await,
        strings(&["a#1", "a#2", "a#3"])
    );
    assert_eq!(
        sort_keys_of(port, Query::new(&pk).prefix("b")).await,
        strings(&["b#1", "b#2"])
    );
    assert_eq!(
        sort_keys_of(port, Query::new(&pk).prefix("z")).await,
        Vec::<String>::new()
    );
    assert_eq!(
        sort_keys_of(port, Query::new(&pk)).await,
        strings(&["a#1", "a#2", "a#3", "b#1", "b#2", "c#1"])
    );
    let items = query_all(port, Query::new(&pk).prefix("c")).await;
    assert_eq!(
        items,
        vec![Item::new(&Key::new(&pk, "c#1")).with("n", 5)],
        "queries return whole items"
    );
}

pub async fn query_between_is_inclusive<T: Table + ?Sized>(port: &T) {
    let pk = partition("query-between");
    seed_lettered_partition(port, &pk).await;
    let between = |low: &str, high: &str| {
        Query::new(&pk).sort(SortCondition::Between(low.into(), high.into()))
    };
    assert_eq!(
        sort_keys_of(port, between("a#2", "b#1")).await,
        strings(&["a#2", "a#3", "b#1"])
    );
    assert_eq!(
        sort_keys_of(port, between("a#9", "b#9")).await,
        strings(&["b#1", "b#2"])
    );
    assert_eq!(
        sort_keys_of(port, between("d", "e")).await,
        Vec::<String>::new()
    );
}

pub async fn query_comparisons_bound_the_sort_key<T: Table + ?Sized>(port: &T) {
    let pk = partition("query-compare");
    seed_lettered_partition(port, &pk).await;
    let compare = |sort: SortCondition| Query::new(&pk).sort(sort);
    let greater = compare(SortCondition::GreaterThan("b#1".into()));
    assert_eq!(sort_keys_of(port, greater).await, strings(&["b#2", "c#1"]));
    let at_least = compare(SortCondition::GreaterOrEqual("b#1".into()));
    assert_eq!(
        sort_keys_of(port, at_least).await,
        strings(&["b#1", "b#2", "c#1"])
    );
    let less = compare(SortCondition::LessThan("a#3".into()));
    assert_eq!(sort_keys_of(port, less).await, strings(&["a#1", "a#2"]));
    let at_most = compare(SortCondition::LessOrEqual("a#3".into()));
    assert_eq!(
        sort_keys_of(port, at_most).await,
        strings(&["a#1", "a#2", "a#3"])
    );
}

pub async fn query_orders_sort_keys_bytewise<T: Table + ?Sized>(port: &T) {
    let pk = partition("query-bytewise");
    let shuffled = ["éclair", "apple", "9", "Zebra", "10", "Apple", "a", "ab"];
    put_all(
        port,
        shuffled
            .iter()
            .map(|sk| Item::new(&Key::new(&pk, *sk)))
            .collect(),
    )
    .await;
    let expected = strings(&["10", "9", "Apple", "Zebra", "a", "ab", "apple", "éclair"]);
    assert_eq!(
        sort_keys_of(port, Query::new(&pk)).await,
        expected,
        "UTF-8 byte order, not locale order"
    );
}

pub async fn query_backward_reverses_the_order<T: Table + ?Sized>(port: &T) {
    let pk = partition("query-backward");
    seed_lettered_partition(port, &pk).await;
    let all = sort_keys_of(port, Query::new(&pk).backward()).await;
    assert_eq!(all, strings(&["c#1", "b#2", "b#1", "a#3", "a#2", "a#1"]));
    let prefixed = sort_keys_of(port, Query::new(&pk).prefix("a#").backward()).await;
    assert_eq!(prefixed, strings(&["a#3", "a#2", "a#1"]));
}

pub async fn query_pages_with_limit_and_cursor<T: Table + ?Sized>(port: &T) {
    let pk = partition("query-pages");
    let sks: Vec<String> = (0..23).map(|n| format!("e#{n:03}")).collect();
    let mut items: Vec<Item> = sks
        .iter()
        .map(|sk| Item::new(&Key::new(&pk, sk.as_str())))
        .collect();
    items.push(Item::new(&Key::new(&pk, "other")));
    put_all(port, items).await;

    let first = port
        .query(Query::new(&pk).prefix("e#").limit(5))
        .await
        .expect("first page");
    assert_eq!(sort_keys(&first.items), sks[..5].to_vec());
    assert!(first.cursor.is_some(), "more items follow the first page");

    assert_eq!(
        sort_keys_of(port, Query::new(&pk).prefix("e#").limit(5)).await,
        sks,
        "each item exactly once, in order"
    );
    let mut reversed = sks.clone();
    reversed.reverse();
    assert_eq!(
        sort_keys_of(port, Query::new(&pk).prefix("e#").limit(4).backward()).await,
        reversed
    );
    assert_eq!(
        sort_keys_of(port, Query::new(&pk).prefix("e#").limit(23)).await,
        sks
    );
}

pub async fn query_gsi1_is_sparse_and_ordered<T: Table + ?Sized>(port: &T) {
    let base = partition("gsi1");
    let index_pk = format!("{base}-index");
    let indexed = |pk: &str, sk: &str, gsi_sk: &str| {
        Item::new(&Key::new(format!("{base}-{pk}"), sk))
            .with(GSI1_PK, index_pk.as_str())
            .with(GSI1_SK, gsi_sk)
    };
    let in_index = vec![
        indexed("p1", "s1", "2026-01-03"),
        indexed("p2", "s1", "2026-01-01"),
        indexed("p3", "s9", "2026-01-02"),
        indexed("p1", "s2", "2026-01-02"),
        indexed("p4", "s1", "2026-01-02"),
        indexed("p5", "s1", "2026-02-01"),
    ];
    let mut fixture = in_index.clone();
    fixture.push(Item::new(&Key::new(format!("{base}-p1"), "no-index-keys")));
    fixture.push(
        Item::new(&Key::new(format!("{base}-p2"), "only-gsi1pk")).with(GSI1_PK, index_pk.as_str()),
    );
    fixture.push(
        Item::new(&Key::new(format!("{base}-p3"), "only-gsi1sk")).with(GSI1_SK, "2026-01-02"),
    );
    put_all(port, fixture).await;

    let gsi_sort_keys = |items: &[Item]| {
        items
            .iter()
            .map(|item| item.get_s(GSI1_SK).unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    let key_set = |items: &[Item]| {
        items
            .iter()
            .map(|item| item.key().expect("a keyed item"))
            .collect::<BTreeSet<_>>()
    };

    let all = query_all(port, Query::on_gsi1(&index_pk)).await;
    let expected_order = strings(&[
        "2026-01-01",
        "2026-01-02",
        "2026-01-02",
        "2026-01-02",
        "2026-01-03",
        "2026-02-01",
    ]);
    assert_eq!(
        gsi_sort_keys(&all),
        expected_order,
        "ordered by gsi1sk; items without both gsi1 keys are absent"
    );
    assert_eq!(key_set(&all), key_set(&in_index));
    assert!(all.contains(&in_index[0]), "the index returns whole items");

    let paged = query_all(port, Query::on_gsi1(&index_pk).limit(2)).await;
    assert_eq!(
        paged.len(),
        in_index.len(),
        "paging through ties returns each item exactly once"
    );
    assert_eq!(key_set(&paged), key_set(&in_index));
    assert_eq!(gsi_sort_keys(&paged), expected_order);

    let january = query_all(port, Query::on_gsi1(&index_pk).prefix("2026-01").backward()).await;
    let mut january_order = expected_order[..5].to_vec();
    january_order.reverse();
    assert_eq!(gsi_sort_keys(&january), january_order);
    let ties = Query::on_gsi1(&index_pk).sort(SortCondition::Between(
        "2026-01-02".into(),
        "2026-01-02".into(),
    ));
    assert_eq!(query_all(port, ties).await.len(), 3);
}

pub async fn batch_write_puts_and_deletes_more_than_one_chunk<T: Table + ?Sized>(port: &T) {
    let pk = partition("batch-write");
    let sks: Vec<String> = (0..60).map(|n| format!("item#{n:02}")).collect();
    let items = sks
        .iter()
        .map(|sk| Item::new(&Key::new(&pk, sk.as_str())).with("payload", sk.as_str()))
        .collect();
    put_all(port, items).await;
    let stored = query_all(port, Query::new(&pk)).await;
    assert_eq!(sort_keys(&stored), sks);
    assert!(
        stored
            .iter()
            .all(|item| item.get_s("payload") == item.get_s("sk")),
        "whole items are written"
    );

    let mut ops: Vec<WriteOp> = sks[..30]
        .iter()
        .map(|sk| WriteOp::Delete(Key::new(&pk, sk.as_str())))
        .collect();
    ops.extend((60..65).map(|n| WriteOp::Put(Item::new(&Key::new(&pk, format!("item#{n:02}"))))));
    port.batch_write(ops)
        .await
        .expect("batch of deletes and puts");
    let remaining: Vec<String> = (30..65).map(|n| format!("item#{n:02}")).collect();
    assert_eq!(sort_keys_of(port, Query::new(&pk)).await, remaining);
    port.batch_write(Vec::new())
        .await
        .expect("an empty batch is a no-op");
}

pub async fn batch_write_keeps_the_last_operation_per_key<T: Table + ?Sized>(port: &T) {
    let pk = partition("batch-last");
    let replaced = Key::new(&pk, "replaced");
    let removed = Key::new(&pk, "removed");
    let ops = vec![
        WriteOp::Put(Item::new(&replaced).with("v", 1)),
        WriteOp::Put(Item::new(&removed)),
        WriteOp::Put(Item::new(&replaced).with("v", 2)),
        WriteOp::Delete(removed.clone()),
    ];
    port.batch_write(ops)
        .await
        .expect("batch with repeated keys");
    assert_eq!(
        port.get(&replaced).await.expect("get"),
        Some(Item::new(&replaced).with("v", 2))
    );
    assert_eq!(port.get(&removed).await.expect("get"), None);
}

pub async fn batch_get_returns_present_items_only<T: Table + ?Sized>(port: &T) {
    let pk = partition("batch-get");
    let items: Vec<Item> = (0..120)
        .map(|n| Item::new(&Key::new(&pk, format!("item#{n:03}"))).with("n", n))
        .collect();
    put_all(port, items.clone()).await;
    let mut keys: Vec<Key> = items
        .iter()
        .map(|item| item.key().expect("keyed"))
        .collect();
    keys.extend((0..5).map(|n| Key::new(&pk, format!("absent#{n}"))));
    keys.push(Key::new(&pk, "item#007"));
    let mut found = port.batch_get(&keys).await.expect("batch_get");
    found.sort_by_key(|item| item.key());
    assert_eq!(
        found, items,
        "every present item once, absent ones left out"
    );
    assert_eq!(
        port.batch_get(&[]).await.expect("empty batch_get"),
        Vec::<Item>::new()
    );
}

pub async fn transact_write_applies_every_operation<T: Table + ?Sized>(port: &T) {
    let pk = partition("transact-ok");
    let (created, counted, removed, checked) = (
        Key::new(&pk, "created"),
        Key::new(&pk, "counted"),
        Key::new(&pk, "removed"),
        Key::new(&pk, "checked"),
    );
    put_all(
        port,
        vec![
            Item::new(&counted).with("count", 1),
            Item::new(&removed),
            Item::new(&checked).with("status", "ok"),
        ],
    )
    .await;
    let ops = vec![
        TransactOp::Put {
            item: Item::new(&created).with("v", 1),
            condition: Some(Condition::NotExists),
        },
        TransactOp::Update {
            key: counted.clone(),
            update: Update::new().add("count", 1i64),
            condition: Some(Condition::Exists),
        },
        TransactOp::Delete {
            key: removed.clone(),
            condition: Some(Condition::Exists),
        },
        TransactOp::Check {
            key: checked.clone(),
            condition: Condition::attr_equals("status", "ok"),
        },
    ];
    port.transact_write(ops).await.expect("transaction");
    assert_eq!(
        port.get(&created).await.expect("get"),
        Some(Item::new(&created).with("v", 1))
    );
    assert_eq!(
        port.get(&counted).await.expect("get"),
        Some(Item::new(&counted).with("count", 2))
    );
    assert_eq!(port.get(&removed).await.expect("get"), None);
    assert_eq!(
        port.get(&checked).await.expect("get"),
        Some(Item::new(&checked).with("status", "ok"))
    );
}

/// Four operations on fresh keys under `pk`, each guarded by `condition(index)`.
fn four_puts(pk: &str, condition: impl Fn(usize) -> Condition) -> Vec<TransactOp> {
    (0..4)
        .map(|index| TransactOp::Put {
            item: Item::new(&Key::new(pk, format!("op#{index}"))).with("written", true),
            condition: Some(condition(index)),
        })
        .collect()
}

pub async fn transact_write_failure_applies_nothing_and_names_the_failed_operation<
    T: Table + ?Sized,
>(
    port: &T,
) {
    let pk = partition("transact-fail");
    let existing = Item::new(&Key::new(&pk, "op#2")).with("written", false);
    port.put(existing.clone(), None).await.expect("put");
    let result = port
        .transact_write(four_puts(&pk, |_| Condition::NotExists))
        .await;
    assert_eq!(
        result,
        Err(PortError::TransactionCanceled { failed: vec![2] })
    );
    assert_eq!(
        query_all(port, Query::new(&pk)).await,
        vec![existing],
        "no operation of the transaction applied"
    );
}

pub async fn transact_write_names_every_failed_operation<T: Table + ?Sized>(port: &T) {
    let pk = partition("transact-fails");
    let counter = Key::new(&pk, "counter");
    port.put(Item::new(&counter).with("count", 10), None)
        .await
        .expect("put");
    let ops = vec![
        TransactOp::Update {
            key: counter.clone(),
            update: Update::new().add("count", 1i64),
            condition: None,
        },
        TransactOp::Check {
            key: Key::new(&pk, "missing"),
            condition: Condition::Exists,
        },
        TransactOp::Delete {
            key: Key::new(&pk, "other"),
            condition: None,
        },
        TransactOp::Put {
            item: Item::new(&Key::new(&pk, "new")),
            condition: Some(Condition::attr_equals("x", 1)),
        },
    ];
    let result = port.transact_write(ops).await;
    assert_eq!(
        result,
        Err(PortError::TransactionCanceled { failed: vec![1, 3] })
    );
    assert_eq!(
        port.get(&counter)
            .await
            .expect("get")
            .and_then(|item| item.get_i64("count")),
        Some(10)
    );
    assert_eq!(port.get(&Key::new(&pk, "new")).await.expect("get"), None);
}

pub async fn transact_write_rejects_more_than_100_operations<T: Table + ?Sized>(port: &T) {
    let pk = partition("transact-limit");
    let ops: Vec<TransactOp> = (0..=MAX_TRANSACT_ITEMS)
        .map(|n| TransactOp::Put {
            item: Item::new(&Key::new(&pk, format!("op#{n:03}"))),
            condition: None,
        })
        .collect();
    let result = port.transact_write(ops).await;
    assert!(
        matches!(result, Err(PortError::Invalid(_))),
        "101 operations are refused: {result:?}"
    );
    assert_eq!(query_all(port, Query::new(&pk)).await, Vec::<Item>::new());
}

pub async fn transact_write_rejects_two_operations_on_one_item<T: Table + ?Sized>(port: &T) {
    let key = Key::new(partition("transact-duplicate"), "item");
    let ops = vec![
        TransactOp::Put {
            item: Item::new(&key),
            condition: None,
        },
        TransactOp::Update {
            key: key.clone(),
            update: Update::new().add("n", 1i64),
            condition: None,
        },
    ];
    let result = port.transact_write(ops).await;
    assert!(
        matches!(result, Err(PortError::Invalid(_))),
        "one item, two operations: {result:?}"
    );
    assert_eq!(port.get(&key).await.expect("get"), None);
}

pub async fn expired_items_are_absent_from_reads<T: Table + ?Sized>(port: &T) {
    let pk = partition("ttl-reads");
    let index_pk = format!("{pk}-index");
    let now = now_epoch();
    let item = |sk: &str, ttl: i64| {
        Item::new(&Key::new(&pk, sk))
            .with(TTL, ttl)
            .with(GSI1_PK, index_pk.as_str())
            .with(GSI1_SK, sk)
    };
    let live = item("live", now + 3600);
    let expired = item("expired", now - 3600);
    let permanent = Item::new(&Key::new(&pk, "permanent"))
        .with(GSI1_PK, index_pk.as_str())
        .with(GSI1_SK, "permanent");
    put_all(port, vec![live.clone(), expired.clone(), permanent.clone()]).await;

    assert_eq!(
        port.get(&Key::new(&pk, "expired")).await.expect("get"),
        None
    );
    assert_eq!(
        port.get(&Key::new(&pk, "live")).await.expect("get"),
        Some(live.clone())
    );
    assert_eq!(
        query_all(port, Query::new(&pk)).await,
        vec![live.clone(), permanent.clone()]
    );
    assert_eq!(
        query_all(port, Query::on_gsi1(&index_pk)).await,
        vec![live.clone(), permanent.clone()]
    );
    let keys = [Key::new(&pk, "live"), Key::new(&pk, "expired")];
    assert_eq!(port.batch_get(&keys).await.expect("batch_get"), vec![live]);
}

pub async fn expired_items_count_as_absent_for_writes<T: Table + ?Sized>(port: &T) {
    let pk = partition("ttl-writes");
    let past = now_epoch() - 3600;
    let expired = |sk: &str| {
        Item::new(&Key::new(&pk, sk))
            .with(TTL, past)
            .with("count", 7)
            .with("stale", true)
    };
    put_all(
        port,
        vec![
            expired("lease"),
            expired("counter"),
            expired("gone"),
            expired("checked"),
        ],
    )
    .await;

    let lease = Item::new(&Key::new(&pk, "lease")).with("owner", "me");
    port.put(lease.clone(), Some(Condition::NotExists))
        .await
        .expect("an expired item does not block NotExists");
    assert_eq!(
        port.get(&Key::new(&pk, "lease")).await.expect("get"),
        Some(lease)
    );

    let counter = Key::new(&pk, "counter");
    let updated = port
        .update(&counter, Update::new().add("count", 1i64), None)
        .await
        .expect("update");
    assert_eq!(
        updated,
        Item::new(&counter).with("count", 1),
        "an update starts from nothing, not the expired item"
    );

    assert_eq!(
        port.delete(&Key::new(&pk, "gone"), None)
            .await
            .expect("delete"),
        None
    );
    let checked = Key::new(&pk, "checked");
    let refused = port
        .update(&checked, Update::new().set("v", 1), Some(Condition::Exists))
        .await;
    assert_eq!(
        refused,
        Err(PortError::ConditionFailed),
        "an expired item does not satisfy Exists"
    );
}
