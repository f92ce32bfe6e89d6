//! The table contract against this engine.

use std::ops::Deref;

use tempfile::TempDir;
use tern_embedded::Db;
use tern_embedded::table::SqliteTable;

/// A table on a fresh database file, together with the directory that holds it.
struct TempTable {
    table: SqliteTable,
    _dir: TempDir,
}

impl Deref for TempTable {
    type Target = SqliteTable;

    fn deref(&self) -> &SqliteTable {
        &self.table
    }
}

async fn fresh_table() -> TempTable {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = Db::open(&dir.path().join("tern.db")).expect("database file");
    let table = SqliteTable::new(db).expect("table schema");
    TempTable { table, _dir: dir }
}

tern_contract::table_contract!(fresh_table());
