//! The table contract against this engine.

use async_trait::async_trait;
use tern_aws::provision;
use tern_aws::table::DynamoTable;
use tern_ports::{
    Condition, Item, Key, Page, PortError, PortResult, Query, Table, TransactOp, Update, WriteOp,
};
use tokio::sync::{OnceCell, RwLock};

/// One table for every case of this test binary; each case writes under its own partition keys.
static TABLE_NAME: OnceCell<String> = OnceCell::const_new();

async fn table_name() -> &'static str {
    TABLE_NAME
        .get_or_init(|| async {
            let name = tern_contract::unique_name("tern-contract-table");
            provision::create_table(&crate::moto_config().await, &name)
                .await
                .expect("create the contract table");
            name
        })
        .await
}

async fn dynamo_table() -> Box<MotoTable> {
    let name = table_name().await;
    Box::new(MotoTable(DynamoTable::new(
        &crate::moto_config().await,
        name,
    )))
}

/// Every transaction of this binary runs alone. When moto cancels a transaction it restores a snapshot of
/// the whole table taken when the transaction began, undoing writes that other cases made meanwhile;
/// DynamoDB itself isolates transactions per item, so the adapter needs no such lock.
static TRANSACTIONS_ALONE: RwLock<()> = RwLock::const_new(());

struct MotoTable(DynamoTable);

#[async_trait]
impl Table for MotoTable {
    async fn get(&self, key: &Key) -> PortResult<Option<Item>> {
        let _shared = TRANSACTIONS_ALONE.read().await;
        self.0.get(key).await
    }

    async fn batch_get(&self, keys: &[Key]) -> PortResult<Vec<Item>> {
        let _shared = TRANSACTIONS_ALONE.read().await;
        self.0.batch_get(keys).await
    }

    async fn put(&self, item: Item, condition: Option<Condition>) -> PortResult<()> {
        let _shared = TRANSACTIONS_ALONE.read().await;
        self.0.put(item, condition).await
    }

    async fn update(
        &self,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> PortResult<Item> {
        let _shared = TRANSACTIONS_ALONE.read().await;
        self.0.update(key, update, condition).await
    }

    async fn delete(&self, key: &Key, condition: Option<Condition>) -> PortResult<Option<Item>> {
        let _shared = TRANSACTIONS_ALONE.read().await;
        self.0.delete(key, condition).await
    }

    async fn query(&self, query: Query) -> PortResult<Page> {
        let _shared = TRANSACTIONS_ALONE.read().await;
        self.0.query(query).await
    }

    async fn batch_write(&self, ops: Vec<WriteOp>) -> PortResult<()> {
        let _shared = TRANSACTIONS_ALONE.read().await;
        self.0.batch_write(ops).await
    }

    async fn transact_write(&self, ops: Vec<TransactOp>) -> PortResult<()> {
        let _alone = TRANSACTIONS_ALONE.write().await;
        self.0.transact_write(ops).await
    }
}

tern_contract::table_contract!(dynamo_table());

#[tokio::test]
async fn creating_the_table_twice_is_fine() {
    let name = table_name().await;
    provision::create_table(&crate::moto_config().await, name)
        .await
        .expect("second create_table");
}

#[tokio::test]
async fn a_missing_table_is_not_found_by_name() {
    let missing = tern_contract::unique_name("tern-missing-table");
    let table = DynamoTable::new(&crate::moto_config().await, missing.clone());
    match table.get(&Key::new("p", "s")).await {
        Err(PortError::NotFound(message)) => assert!(message.contains(&missing), "{message}"),
        other => panic!("expected NotFound naming the table, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable_in_one_line() {
    let config = crate::unreachable_config().await;
    let table = DynamoTable::new(&config, "any-table");
    match table.get(&Key::new("p", "s")).await {
        Err(PortError::Unavailable(message)) => {
            assert!(!message.contains('\n'), "one line: {message}");
            assert!(
                message.contains("DynamoDB is unreachable at http://127.0.0.1:9"),
                "{message}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
