//! The single-table layout: every partition key (`pk`), sort key (`sk`) and `gsi1` key Tern writes.
//!
//! All of Tern's data lives in one table (DynamoDB on AWS, SQLite locally). Keys are built only here, so
//! that the whole scheme can be read in one place and a new feature can see what is taken. Components are
//! joined with `#`; identifiers never contain `#`.
//!
//! | item | `pk` | `sk` | `gsi1pk` | `gsi1sk` |
//! |---|---|---|---|---|
//! | workspace | `WS#<workspace id>` | `WORKSPACE` | `WORKSPACES` | `<created, sortable>#<workspace id>` |
//! | API key | `KEY#<sha-256 of the key, hex>` | `KEY` | — | — |
//!
//! Why these shapes:
//! - A workspace's own items share its partition (`WS#<id>`), so later per-workspace entities (definitions,
//!   settings) add sort-key kinds next to `WORKSPACE`.
//! - Listing workspaces reads the `WORKSPACES` partition of `gsi1`. It holds one small item per workspace and is
//!   read only by administrators, so it never grows hot.
//! - An API key is found by the hash of the presented key, one item per key in its own partition: lookups are a
//!   single `get`, spread evenly, and the plaintext is stored nowhere.

use jiff::Timestamp;
use tern_ports::Key;

/// The sort key of a workspace's own item within its partition.
pub const WORKSPACE_SK: &str = "WORKSPACE";
/// The `gsi1` partition that lists every workspace.
pub const WORKSPACES_GSI1_PK: &str = "WORKSPACES";
/// The sort key of an API key item.
pub const API_KEY_SK: &str = "KEY";

/// The partition of everything that belongs to one workspace.
pub fn workspace_pk(workspace_id: &str) -> String {
    format!("WS#{workspace_id}")
}

/// The item describing a workspace.
pub fn workspace_key(workspace_id: &str) -> Key {
    Key::new(workspace_pk(workspace_id), WORKSPACE_SK)
}

/// The `gsi1` sort key of a workspace: creation order, then id to break ties.
pub fn workspace_gsi1_sk(created_at: Timestamp, workspace_id: &str) -> String {
    format!("{}#{workspace_id}", sortable_time(created_at))
}

/// The item of an API key, addressed by the key's SHA-256 (hex).
pub fn api_key_key(key_hash_hex: &str) -> Key {
    Key::new(format!("KEY#{key_hash_hex}"), API_KEY_SK)
}

/// A timestamp as fixed-width UTC text (`2026-01-02T03:04:05.006Z`), so that byte order is time order, as
/// sort keys compare.
pub fn sortable_time(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sortable_time_has_a_fixed_width_and_sorts_by_time() {
        let whole: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        let later: Timestamp = "2026-01-02T03:04:05.5Z".parse().unwrap();
        assert_eq!(sortable_time(whole), "2026-01-02T03:04:05.000Z");
        assert_eq!(sortable_time(later), "2026-01-02T03:04:05.500Z");
        assert!(sortable_time(whole) < sortable_time(later));
    }

    #[test]
    fn keys_follow_the_documented_patterns() {
        assert_eq!(workspace_key("ws_1"), Key::new("WS#ws_1", "WORKSPACE"));
        assert_eq!(api_key_key("ab12"), Key::new("KEY#ab12", "KEY"));
        let at: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        assert_eq!(
            workspace_gsi1_sk(at, "ws_1"),
            "2026-01-02T03:04:05.000Z#ws_1"
        );
    }
}
