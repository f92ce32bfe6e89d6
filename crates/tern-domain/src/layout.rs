//! The single-table layout: every partition key (`pk`), sort key (`sk`) and `gsi1` key Tern writes.
//!
//! All of Tern's data lives in one table (DynamoDB on AWS, SQLite locally). Keys are built only here, so
//! that the whole scheme can be read in one place and a new feature can see what is taken. Components are
//! joined with `#`; an identifier that comes from outside (a user id, a message id…) is escaped with
//! [`key_part`] first, so it never contains `#` and one key can never be read as another.
//!
//! | item | `pk` | `sk` | `gsi1pk` | `gsi1sk` |
//! |---|---|---|---|---|
//! | workspace | `WS#<workspace id>` | `WORKSPACE` | `WORKSPACES` | `<created, sortable>#<workspace id>` |
//! | API key | `KEY#<sha-256 of the key, hex>` | `KEY` | — | — |
//! | user profile | `WS#<ws>#U#<userId>` | `PROFILE` | `WS#<ws>#USERS#<shard 0..7>` | `<userId>` (raw) |
//! | anonymous profile | `WS#<ws>#ANON#<anonymousId>` | `PROFILE` | — | — |
//! | hot event | the profile's `pk` | `EV#<timestamp, sortable>#<messageId>` | — | — |
//! | profile's group | the profile's `pk` | `GROUP#<groupId>` | — | — |
//! | dedupe marker | the partition of the profile the event names (`userId`, else `anonymousId`) | `MSG#<messageId>` | — | — |
//! | identity link | `WS#<ws>#ID#<anonymousId or previousId>` | `ID` | — | — |
//! | group | `WS#<ws>#G#<groupId>` | `GROUP` | — | — |
//! | group member | `WS#<ws>#G#<groupId>` | `MEMBER#<userId>` or `MEMBER#ANON#<anonymousId>` | — | — |
//! | import | `WS#<ws>` | `IMPORT#<importId>` | — | — |
//! | import row error | `WS#<ws>` | `IMPORT#<importId>#ERR#<row, 12 digits>` | — | — |
//! | segment (latest version) | `WS#<ws>` | `SEGMENT#<segmentId>` | — | — |
//! | segment version | `WS#<ws>` | `SEGVER#<segmentId>#<version, 10 digits>` | — | — |
//! | user's segment state | the profile's `pk` | `SEGSTATE` | — | — |
//! | user's segment change | the profile's `pk` | `SEGCHANGE#<time, sortable>#<segmentId>#<entered or exited>` | — | — |
//! | segment member | `WS#<ws>#SEG#<segmentId>#M#<shard 0..31>` | `<userId>` | — | — |
//! | segment member count | `WS#<ws>#SEG#<segmentId>#COUNT` | `<shard 0..31, 2 digits>` | — | — |
//! | user due for a segment check | `WS#<ws>#SEGDUE#<shard 0..15>` | `<due time, sortable>#<userId>` | — | — |
//! | segment backfill progress | `WS#<ws>` | `SEGBACKFILL#<segmentId>` | — | — |
//! | template (current version) | `WS#<ws>` | `TEMPLATE#<templateId>` | — | — |
//! | template version | `WS#<ws>` | `TEMPLATE#<templateId>#V#<version, 10 digits>` | — | — |
//! | subscription group | `WS#<ws>` | `SUBGROUP#<groupId>` | — | — |
//! | user's subscription state | the profile's `pk` | `SUB#<groupId>` | — | — |
//! | suppressed address | `WS#<ws>#SUPP#<address, lower-case>` | `SUPP` | `WS#<ws>#SUPPRESSIONS` | `<address, lower-case>` |
//!
//! Attributes of a profile: each trait as `t:<name>` holding the trait's JSON text, so that an identify
//! merges with one update and no read; each linked identity (an anonymousId or an alias's previousId) as
//! `a:<id>` holding when it was linked; `user_id` or `anonymous_id`, `timezone`, `context` (JSON text),
//! `first_seen`, `last_seen`. A group keeps its traits the same way. Hot events and dedupe markers carry a
//! `ttl`, so DynamoDB (and the embedded engine) forget them.
//!
//! Why these shapes:
//! - A workspace's own items share its partition (`WS#<id>`), so later per-workspace entities (definitions,
//!   settings, imports) add sort-key kinds next to `WORKSPACE`.
//! - Listing workspaces reads the `WORKSPACES` partition of `gsi1`. It holds one small item per workspace and is
//!   read only by administrators, so it never grows hot.
//! - An API key is found by the hash of the presented key, one item per key in its own partition: lookups are a
//!   single `get`, spread evenly, and the plaintext is stored nowhere.
//! - Every ingest key starts with the workspace's partition name, so no read of one workspace can reach another's
//!   items.
//! - A profile and its recent events share a partition: the admin read of a user is a `get` and one query of
//!   `EV#` backwards (newest first).
//! - A dedupe marker sits in the partition of the profile its event names, as sent (before any identity
//!   link is resolved, so a retried message finds it again). The events of a batch touch their profiles'
//!   partitions anyway, so the markers add no scattered writes of their own; a batch still checks all of
//!   them, and its identity links (each in a partition of its own), with one `batch_get`. A message id
//!   is therefore unique per user, which is what a client's retry of the same message repeats.
//! - Users are listed through `gsi1`, spread over [`USER_SHARDS`] partitions by a hash of the user id, so that
//!   a workspace signing up many users at once does not write one index partition hot.
//! - A segment's definition is versioned: each save writes an immutable `SEGVER#` item and replaces the
//!   `SEGMENT#` item, which holds the latest version, so listing the active segments is one query of
//!   `SEGMENT#`. A user's segment state (counters, memberships, next checks) sits next to the profile, so that
//!   evaluation reads both with one `batch_get`, and so do the user's membership changes, by time.
//! - A segment's members are spread over [`SEGMENT_MEMBER_SHARDS`] partitions by a hash of the user id, and
//!   its count over as many small items (one per shard, changed by atomic adds, summed on read): a segment of
//!   a million users writes no partition or item hot, and its members are read shard by shard, a page at a
//!   time.
//! - Users due for a time-based re-check are filed by due time in [`SEGMENT_DUE_SHARDS`] partitions: a
//!   scheduled visit reads, in each, only the entries whose time has come.
//! - A template is versioned like a segment, but its versions share its prefix (`TEMPLATE#<id>#V#`): a
//!   template's history is one prefix query, and since ids are escaped (no `#`), a current item is told from
//!   a version by its sort key alone. Versions are never overwritten, so a message queued with a version
//!   renders the same however the template changes afterwards.
//! - A user's subscription states sit next to the profile (`SUB#`), so a user's preferences are one query
//!   and the sender's check is one `batch_get` with the group.
//! - A suppressed address has its own partition, so the sender's check per message spreads over the table;
//!   the workspace's list is read through `gsi1`, whose partition is written only when an address is
//!   suppressed or released.

use std::borrow::Cow;

use jiff::Timestamp;
use tern_ports::Key;

use crate::ingest::Subject;

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

/// The sort key of a profile item within its partition.
pub const PROFILE_SK: &str = "PROFILE";
/// The sort-key prefix of the hot events in a profile's partition.
pub const HOT_EVENT_SK_PREFIX: &str = "EV#";
/// The sort-key prefix of a profile's group memberships.
pub const PROFILE_GROUP_SK_PREFIX: &str = "GROUP#";
/// The sort-key prefix of a dedupe marker in its profile's partition.
pub const DEDUPE_SK_PREFIX: &str = "MSG#";
/// The sort key of an identity link.
pub const IDENTITY_LINK_SK: &str = "ID";
/// The sort key of a group's own item.
pub const GROUP_SK: &str = "GROUP";
/// The sort-key prefix of a group's members.
pub const GROUP_MEMBER_SK_PREFIX: &str = "MEMBER#";
/// How many `gsi1` partitions the users of one workspace are spread over.
pub const USER_SHARDS: u8 = 8;
/// The attribute-name prefix of a trait on a profile or group item.
pub const TRAIT_ATTR_PREFIX: &str = "t:";
/// The attribute-name prefix of a linked identity on a profile item.
pub const LINKED_ID_ATTR_PREFIX: &str = "a:";
/// The width rows are zero-padded to in an import error's sort key, so that errors sort by row.
const IMPORT_ROW_DIGITS: usize = 12;

/// An identifier from outside made safe to join into a key: `%` becomes `%25` and `#` becomes `%23`, so the
/// result never contains the `#` that separates components and distinct ids stay distinct.
pub fn key_part(id: &str) -> Cow<'_, str> {
    if !id.contains(['%', '#']) {
        return Cow::Borrowed(id);
    }
    let mut escaped = String::with_capacity(id.len() + 8);
    for c in id.chars() {
        match c {
            '%' => escaped.push_str("%25"),
            '#' => escaped.push_str("%23"),
            other => escaped.push(other),
        }
    }
    Cow::Owned(escaped)
}

/// The partition of a profile: a user's, or an anonymous visitor's before they are identified.
pub fn profile_pk(workspace_id: &str, subject: Subject<'_>) -> String {
    match subject {
        Subject::User(user_id) => format!("WS#{workspace_id}#U#{}", key_part(user_id)),
        Subject::Anonymous(anonymous_id) => {
            format!("WS#{workspace_id}#ANON#{}", key_part(anonymous_id))
        }
    }
}

/// The profile item of a user or anonymous visitor.
pub fn profile_key(workspace_id: &str, subject: Subject<'_>) -> Key {
    Key::new(profile_pk(workspace_id, subject), PROFILE_SK)
}

/// The `gsi1` partition holding one shard of a workspace's users.
pub fn users_gsi1_pk(workspace_id: &str, shard: u8) -> String {
    format!("WS#{workspace_id}#USERS#{shard}")
}

/// The shard of `gsi1` a user is listed in: FNV-1a of the user id, so it never changes for a user.
pub fn user_shard(user_id: &str) -> u8 {
    let hash = user_id.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    (hash % u32::from(USER_SHARDS)) as u8
}

/// The sort key of a hot event in its profile's partition: time order, then the message id.
pub fn hot_event_sk(timestamp: Timestamp, message_id: &str) -> String {
    format!(
        "{HOT_EVENT_SK_PREFIX}{}#{}",
        sortable_time(timestamp),
        key_part(message_id)
    )
}

/// The marker saying a message id was stored (the dedupe window), in the partition of the profile the
/// message names.
pub fn dedupe_key(workspace_id: &str, subject: Subject<'_>, message_id: &str) -> Key {
    Key::new(
        profile_pk(workspace_id, subject),
        format!("{DEDUPE_SK_PREFIX}{}", key_part(message_id)),
    )
}

/// The link from an anonymous id (or an alias's previous id) to the user it resolves to.
pub fn identity_link_key(workspace_id: &str, linked_id: &str) -> Key {
    Key::new(
        format!("WS#{workspace_id}#ID#{}", key_part(linked_id)),
        IDENTITY_LINK_SK,
    )
}

/// The partition of a group (an account): its traits and its members.
pub fn group_pk(workspace_id: &str, group_id: &str) -> String {
    format!("WS#{workspace_id}#G#{}", key_part(group_id))
}

/// A group's own item, holding its traits.
pub fn group_key(workspace_id: &str, group_id: &str) -> Key {
    Key::new(group_pk(workspace_id, group_id), GROUP_SK)
}

/// A member of a group, in the group's partition.
pub fn group_member_key(workspace_id: &str, group_id: &str, member: Subject<'_>) -> Key {
    let sk = match member {
        Subject::User(user_id) => format!("{GROUP_MEMBER_SK_PREFIX}{}", key_part(user_id)),
        Subject::Anonymous(anonymous_id) => {
            format!("{GROUP_MEMBER_SK_PREFIX}ANON#{}", key_part(anonymous_id))
        }
    };
    Key::new(group_pk(workspace_id, group_id), sk)
}

/// A membership seen from the member: in the profile's partition, so a user's groups are one query.
pub fn profile_group_key(workspace_id: &str, member: Subject<'_>, group_id: &str) -> Key {
    Key::new(
        profile_pk(workspace_id, member),
        format!("{PROFILE_GROUP_SK_PREFIX}{}", key_part(group_id)),
    )
}

/// The item of one CSV import: its status and summary.
pub fn import_key(workspace_id: &str, import_id: &str) -> Key {
    Key::new(
        workspace_pk(workspace_id),
        format!("IMPORT#{}", key_part(import_id)),
    )
}

/// The sort-key prefix of one import's row errors, for reading them in row order.
pub fn import_errors_sk_prefix(import_id: &str) -> String {
    format!("IMPORT#{}#ERR#", key_part(import_id))
}

/// One row error of an import; rows are zero-padded so that the errors sort by row.
pub fn import_error_key(workspace_id: &str, import_id: &str, row: u64) -> Key {
    Key::new(
        workspace_pk(workspace_id),
        format!(
            "{}{row:0width$}",
            import_errors_sk_prefix(import_id),
            width = IMPORT_ROW_DIGITS
        ),
    )
}

/// The sort-key prefix of a workspace's segments (their latest versions).
pub const SEGMENT_SK_PREFIX: &str = "SEGMENT#";
/// The sort key of a user's segment state in the profile's partition.
pub const SEGMENT_STATE_SK: &str = "SEGSTATE";
/// The sort-key prefix of a user's segment membership changes.
pub const SEGMENT_CHANGE_SK_PREFIX: &str = "SEGCHANGE#";
/// How many partitions the members of one segment are spread over (and how many count items it has).
pub const SEGMENT_MEMBER_SHARDS: u8 = 32;
/// How many partitions the users due for a segment re-check are spread over, per workspace.
pub const SEGMENT_DUE_SHARDS: u8 = 16;
/// The width versions are zero-padded to in a segment version's sort key.
const SEGMENT_VERSION_DIGITS: usize = 10;

/// The item holding the latest version of a segment's definition.
pub fn segment_key(workspace_id: &str, segment_id: &str) -> Key {
    Key::new(
        workspace_pk(workspace_id),
        format!("{SEGMENT_SK_PREFIX}{}", key_part(segment_id)),
    )
}

/// One saved version of a segment's definition; versions are zero-padded so that they sort.
pub fn segment_version_key(workspace_id: &str, segment_id: &str, version: i64) -> Key {
    Key::new(
        workspace_pk(workspace_id),
        format!(
            "SEGVER#{}#{version:0width$}",
            key_part(segment_id),
            width = SEGMENT_VERSION_DIGITS
        ),
    )
}

/// The progress of a segment's backfill (the latest one: each save of the segment starts a new one).
pub fn segment_backfill_key(workspace_id: &str, segment_id: &str) -> Key {
    Key::new(
        workspace_pk(workspace_id),
        format!("SEGBACKFILL#{}", key_part(segment_id)),
    )
}

/// A user's segment state: counters, memberships and next checks, next to the profile.
pub fn segment_state_key(workspace_id: &str, user_id: &str) -> Key {
    Key::new(
        profile_pk(workspace_id, Subject::User(user_id)),
        SEGMENT_STATE_SK,
    )
}

/// The record of one membership change of a user, in the profile's partition, by time.
pub fn segment_change_key(
    workspace_id: &str,
    user_id: &str,
    at: Timestamp,
    segment_id: &str,
    change: &str,
) -> Key {
    Key::new(
        profile_pk(workspace_id, Subject::User(user_id)),
        format!(
            "{SEGMENT_CHANGE_SK_PREFIX}{}#{}#{change}",
            sortable_time(at),
            key_part(segment_id)
        ),
    )
}

/// The shard of a segment's members (and count) a user falls in: FNV-1a of the user id.
pub fn segment_member_shard(user_id: &str) -> u8 {
    (fnv1a(user_id) % u32::from(SEGMENT_MEMBER_SHARDS)) as u8
}

/// One shard of a segment's members.
pub fn segment_members_pk(workspace_id: &str, segment_id: &str, shard: u8) -> String {
    format!("WS#{workspace_id}#SEG#{}#M#{shard}", key_part(segment_id))
}

/// A user's item in a segment's members.
pub fn segment_member_key(workspace_id: &str, segment_id: &str, user_id: &str) -> Key {
    Key::new(
        segment_members_pk(workspace_id, segment_id, segment_member_shard(user_id)),
        key_part(user_id),
    )
}

/// One shard of a segment's member count.
pub fn segment_count_key(workspace_id: &str, segment_id: &str, shard: u8) -> Key {
    Key::new(
        format!("WS#{workspace_id}#SEG#{}#COUNT", key_part(segment_id)),
        format!("{shard:02}"),
    )
}

/// One shard of a workspace's users due for a segment re-check.
pub fn segment_due_pk(workspace_id: &str, shard: u8) -> String {
    format!("WS#{workspace_id}#SEGDUE#{shard}")
}

/// A user's entry in the due index: due time first, so that a visit reads what is due with one range.
pub fn segment_due_key(workspace_id: &str, user_id: &str, due: Timestamp) -> Key {
    let shard = (fnv1a(user_id) % u32::from(SEGMENT_DUE_SHARDS)) as u8;
    Key::new(
        segment_due_pk(workspace_id, shard),
        format!("{}#{}", sortable_time(due), key_part(user_id)),
    )
}

/// The sort-key bound below which a due index partition holds the entries due at or before `now`.
pub fn segment_due_sk_bound(now: Timestamp) -> String {
    // `$` follows the `#` after the time, so every entry of the same instant is below the bound.
    format!("{}$", sortable_time(now))
}

/// The sort-key prefix of a workspace's templates (current items and versions).
pub const TEMPLATE_SK_PREFIX: &str = "TEMPLATE#";
/// The width versions are zero-padded to in a template version's sort key.
const TEMPLATE_VERSION_DIGITS: usize = 10;

/// The item holding the current version of a template.
pub fn template_key(workspace_id: &str, template_id: &str) -> Key {
    Key::new(
        workspace_pk(workspace_id),
        format!("{TEMPLATE_SK_PREFIX}{}", key_part(template_id)),
    )
}

/// The sort-key prefix of one template's versions.
pub fn template_versions_sk_prefix(template_id: &str) -> String {
    format!("{TEMPLATE_SK_PREFIX}{}#V#", key_part(template_id))
}

/// One immutable version of a template; versions are zero-padded so that they sort.
pub fn template_version_key(workspace_id: &str, template_id: &str, version: i64) -> Key {
    Key::new(
        workspace_pk(workspace_id),
        format!(
            "{}{version:0width$}",
            template_versions_sk_prefix(template_id),
            width = TEMPLATE_VERSION_DIGITS
        ),
    )
}

/// The sort-key prefix of a workspace's subscription groups.
pub const SUBSCRIPTION_GROUP_SK_PREFIX: &str = "SUBGROUP#";
/// The sort-key prefix of a user's subscription states in the profile's partition.
pub const SUBSCRIPTION_STATE_SK_PREFIX: &str = "SUB#";
/// The sort key of a suppressed address's item.
pub const SUPPRESSION_SK: &str = "SUPP";

/// A subscription group's item.
pub fn subscription_group_key(workspace_id: &str, group_id: &str) -> Key {
    Key::new(
        workspace_pk(workspace_id),
        format!("{SUBSCRIPTION_GROUP_SK_PREFIX}{}", key_part(group_id)),
    )
}

/// A user's state in one subscription group, next to the profile.
pub fn subscription_state_key(workspace_id: &str, user_id: &str, group_id: &str) -> Key {
    Key::new(
        profile_pk(workspace_id, Subject::User(user_id)),
        format!("{SUBSCRIPTION_STATE_SK_PREFIX}{}", key_part(group_id)),
    )
}

/// A suppressed address (already normalized to lower case).
pub fn suppression_key(workspace_id: &str, address: &str) -> Key {
    Key::new(
        format!("WS#{workspace_id}#SUPP#{}", key_part(address)),
        SUPPRESSION_SK,
    )
}

/// The `gsi1` partition listing a workspace's suppressed addresses.
pub fn suppressions_gsi1_pk(workspace_id: &str) -> String {
    format!("WS#{workspace_id}#SUPPRESSIONS")
}

/// FNV-1a, 32 bits: a stable, well-spread hash for choosing shards.
fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// The attribute holding trait `name` on a profile or group item.
pub fn trait_attr(name: &str) -> String {
    format!("{TRAIT_ATTR_PREFIX}{name}")
}

/// The attribute recording, on a user's profile, that `linked_id` resolves to this user.
pub fn linked_id_attr(linked_id: &str) -> String {
    format!("{LINKED_ID_ATTR_PREFIX}{linked_id}")
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
    fn key_parts_escape_the_separator_and_the_escape_character() {
        assert_eq!(key_part("user-1@example.com"), "user-1@example.com");
        assert!(matches!(key_part("plain"), Cow::Borrowed(_)));
        assert_eq!(key_part("a#b"), "a%23b");
        assert_eq!(key_part("50%"), "50%25");
        assert_eq!(key_part("%23"), "%2523");
        assert_eq!(key_part("#%#"), "%23%25%23");
        // Two ids that would collide if only `#` were escaped stay distinct.
        assert_ne!(key_part("a#b"), key_part("a%23b"));
        assert!(!key_part("x#y#z").contains('#'));
    }

    #[test]
    fn ingest_keys_follow_the_documented_patterns() {
        let user = Subject::User("u#1");
        let anonymous = Subject::Anonymous("an-1");
        assert_eq!(
            profile_key("ws_1", user),
            Key::new("WS#ws_1#U#u%231", "PROFILE")
        );
        assert_eq!(
            profile_key("ws_1", anonymous),
            Key::new("WS#ws_1#ANON#an-1", "PROFILE")
        );
        let at: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        assert_eq!(hot_event_sk(at, "m#1"), "EV#2026-01-02T03:04:05.000Z#m%231");
        assert_eq!(
            dedupe_key("ws_1", Subject::User("u1"), "m1"),
            Key::new("WS#ws_1#U#u1", "MSG#m1")
        );
        assert_eq!(
            identity_link_key("ws_1", "an-1"),
            Key::new("WS#ws_1#ID#an-1", "ID")
        );
        assert_eq!(group_key("ws_1", "g1"), Key::new("WS#ws_1#G#g1", "GROUP"));
        assert_eq!(
            group_member_key("ws_1", "g1", user),
            Key::new("WS#ws_1#G#g1", "MEMBER#u%231")
        );
        assert_eq!(
            group_member_key("ws_1", "g1", anonymous),
            Key::new("WS#ws_1#G#g1", "MEMBER#ANON#an-1")
        );
        assert_eq!(
            profile_group_key("ws_1", user, "g1"),
            Key::new("WS#ws_1#U#u%231", "GROUP#g1")
        );
        assert_eq!(users_gsi1_pk("ws_1", 7), "WS#ws_1#USERS#7");
        assert_eq!(
            import_key("ws_1", "imp1"),
            Key::new("WS#ws_1", "IMPORT#imp1")
        );
        assert_eq!(
            import_error_key("ws_1", "imp1", 42),
            Key::new("WS#ws_1", "IMPORT#imp1#ERR#000000000042")
        );
        assert!(import_error_key("ws_1", "imp1", 9).sk < import_error_key("ws_1", "imp1", 10).sk);
        assert_eq!(trait_attr("plan"), "t:plan");
        assert_eq!(linked_id_attr("an-1"), "a:an-1");
    }

    #[test]
    fn every_ingest_key_is_inside_its_workspace() {
        let keys = [
            profile_key("ws_a", Subject::User("u")),
            profile_key("ws_a", Subject::Anonymous("u")),
            dedupe_key("ws_a", Subject::Anonymous("a"), "m"),
            identity_link_key("ws_a", "i"),
            group_key("ws_a", "g"),
            group_member_key("ws_a", "g", Subject::User("u")),
            profile_group_key("ws_a", Subject::User("u"), "g"),
            import_key("ws_a", "i"),
        ];
        for key in keys {
            assert!(
                key.pk.starts_with("WS#ws_a#") || key.pk == "WS#ws_a",
                "{key:?}"
            );
        }
        // A user id cannot forge another workspace's or another kind's partition.
        assert_ne!(
            profile_pk("ws_a", Subject::User("x#ANON#y")),
            profile_pk("ws_a#U#x", Subject::Anonymous("y"))
        );
    }

    #[test]
    fn user_shards_are_stable_and_spread() {
        assert_eq!(user_shard("user-1"), user_shard("user-1"));
        let shards: std::collections::BTreeSet<u8> =
            (0..200).map(|i| user_shard(&format!("user-{i}"))).collect();
        assert_eq!(shards.len(), usize::from(USER_SHARDS));
        assert!(shards.iter().all(|shard| *shard < USER_SHARDS));
    }

    #[test]
    fn segment_keys_follow_the_documented_patterns() {
        assert_eq!(
            segment_key("ws_1", "vip"),
            Key::new("WS#ws_1", "SEGMENT#vip")
        );
        assert_eq!(
            segment_version_key("ws_1", "vip", 3),
            Key::new("WS#ws_1", "SEGVER#vip#0000000003")
        );
        assert!(
            segment_version_key("ws_1", "vip", 9).sk < segment_version_key("ws_1", "vip", 10).sk
        );
        assert_eq!(
            segment_state_key("ws_1", "u#1"),
            Key::new("WS#ws_1#U#u%231", "SEGSTATE")
        );
        let at: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        assert_eq!(
            segment_change_key("ws_1", "u1", at, "vip", "entered"),
            Key::new(
                "WS#ws_1#U#u1",
                "SEGCHANGE#2026-01-02T03:04:05.000Z#vip#entered"
            )
        );
        let member = segment_member_key("ws_1", "vip", "u#1");
        assert_eq!(member.sk, "u%231");
        assert_eq!(
            member.pk,
            format!("WS#ws_1#SEG#vip#M#{}", segment_member_shard("u#1"))
        );
        assert_eq!(
            segment_count_key("ws_1", "vip", 7),
            Key::new("WS#ws_1#SEG#vip#COUNT", "07")
        );
        let due = segment_due_key("ws_1", "u1", at);
        assert!(due.pk.starts_with("WS#ws_1#SEGDUE#"));
        assert_eq!(due.sk, "2026-01-02T03:04:05.000Z#u1");
        assert!(due.sk < segment_due_sk_bound(at));
        assert!(due.sk > segment_due_sk_bound(at - jiff::SignedDuration::from_millis(1)));
    }

    #[test]
    fn segment_member_shards_are_stable_and_spread() {
        let shards: std::collections::BTreeSet<u8> = (0..2000)
            .map(|i| segment_member_shard(&format!("user-{i}")))
            .collect();
        assert_eq!(shards.len(), usize::from(SEGMENT_MEMBER_SHARDS));
    }

    #[test]
    fn template_subscription_and_suppression_keys_follow_the_documented_patterns() {
        assert_eq!(
            template_key("ws_1", "wel#come"),
            Key::new("WS#ws_1", "TEMPLATE#wel%23come")
        );
        assert_eq!(
            template_version_key("ws_1", "welcome", 3),
            Key::new("WS#ws_1", "TEMPLATE#welcome#V#0000000003")
        );
        assert!(template_version_key("ws_1", "a", 9).sk < template_version_key("ws_1", "a", 10).sk);
        assert!(
            template_version_key("ws_1", "a", 1)
                .sk
                .starts_with(&template_versions_sk_prefix("a"))
        );
        assert_eq!(
            subscription_group_key("ws_1", "news"),
            Key::new("WS#ws_1", "SUBGROUP#news")
        );
        assert_eq!(
            subscription_state_key("ws_1", "u#1", "news"),
            Key::new("WS#ws_1#U#u%231", "SUB#news")
        );
        assert_eq!(
            suppression_key("ws_1", "ada@example.com"),
            Key::new("WS#ws_1#SUPP#ada@example.com", "SUPP")
        );
        assert_eq!(suppressions_gsi1_pk("ws_1"), "WS#ws_1#SUPPRESSIONS");
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
