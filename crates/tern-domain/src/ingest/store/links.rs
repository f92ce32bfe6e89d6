//! Identity links: an identify carrying both ids (or an alias) ties an anonymous id to a user. The link
//! item makes later anonymous-only events resolve to the user; the anonymous profile's traits are merged
//! into the user's (the user's own traits win) and its recent events are copied under the user, so that
//! the user's profile shows the history from before they signed in.
//!
//! The link item is written last: if anything before it fails, the retry finds no link and merges again
//! (every merge write is idempotent), while a link that exists already means the merge was done.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::Timestamp;
use tern_ports::{AttrValue, Item, Key, Query, Table, Update, WriteOp};

use super::plan::{NewLink, Plan};
use super::write_updates;
use crate::ingest::Subject;
use crate::profile::attr;
use crate::stored::optional_time;
use crate::{DomainResult, layout};

/// The most recent events of one linked profile copied under the user.
pub const MAX_COPIED_EVENTS: usize = 1000;

/// Links the batch's new identities; links the table holds already are left alone.
pub(super) async fn link_identities(
    table: &dyn Table,
    workspace_id: &str,
    plan: &Plan<'_>,
    stored_links: &HashMap<String, String>,
) -> DomainResult<()> {
    let links: Vec<&NewLink<'_>> = plan
        .links
        .iter()
        .filter(|link| stored_links.get(link.linked_id).map(String::as_str) != Some(link.user_id))
        .collect();
    if links.is_empty() {
        return Ok(());
    }
    let profiles = read_profiles(table, workspace_id, &links).await?;
    let mut merges: BTreeMap<Key, Merge> = BTreeMap::new();
    let mut copies = Vec::new();
    for link in &links {
        let target_key = layout::profile_key(workspace_id, Subject::User(link.user_id));
        let merge = match merges.entry(target_key.clone()) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(new) => new.insert(Merge::new(profiles.get(&target_key))?),
        };
        for source in sources(link) {
            let source_key = layout::profile_key(workspace_id, source);
            if source_key == target_key {
                continue;
            }
            let Some(source_profile) = profiles.get(&source_key) else {
                continue;
            };
            merge.absorb(source_profile)?;
            copies.extend(recent_events(table, &source_key.pk, &target_key.pk).await?);
        }
    }
    let updates = merges
        .into_iter()
        .filter_map(|(key, merge)| {
            let touched = plan.profiles.get(&key.pk);
            let update = merge.into_update(|name| touched.is_some_and(|p| p.touches_trait(name)));
            (!update.is_empty()).then_some((key, update))
        })
        .collect();
    write_updates(table, updates).await?;
    if !copies.is_empty() {
        table.batch_write(copies).await?;
    }
    let link_items = links
        .iter()
        .map(|link| WriteOp::Put(link_item(workspace_id, link)))
        .collect();
    table.batch_write(link_items).await?;
    Ok(())
}

/// The profiles a link merges from: the anonymous visitor, and for an alias also a user by that id (an
/// alias may rename a user).
fn sources<'a>(link: &NewLink<'a>) -> Vec<Subject<'a>> {
    let mut sources = vec![Subject::Anonymous(link.linked_id)];
    if link.from_alias {
        sources.push(Subject::User(link.linked_id));
    }
    sources
}

/// The source and target profiles of the links, with one `batch_get`.
async fn read_profiles(
    table: &dyn Table,
    workspace_id: &str,
    links: &[&NewLink<'_>],
) -> DomainResult<HashMap<Key, Item>> {
    let keys: Vec<Key> = links
        .iter()
        .flat_map(|link| {
            sources(link)
                .into_iter()
                .chain([Subject::User(link.user_id)])
                .map(|subject| layout::profile_key(workspace_id, subject))
        })
        .collect();
    let items = table.batch_get(&keys).await?;
    Ok(items
        .into_iter()
        .filter_map(|item| Some((item.key()?, item)))
        .collect())
}

/// What linked profiles add to one user's profile.
struct Merge {
    /// Trait attributes the user's profile lacks, by attribute name; a later source replaces an earlier one.
    traits: BTreeMap<String, AttrValue>,
    /// The user's first time seen, as stored, and the earliest of the sources'.
    stored_first_seen: Option<Timestamp>,
    earliest_first_seen: Option<Timestamp>,
    timezone: Option<AttrValue>,
    context: Option<AttrValue>,
    /// The attribute names the user's profile holds.
    target_has: BTreeSet<String>,
}

impl Merge {
    fn new(target: Option<&Item>) -> DomainResult<Self> {
        let target_has = target
            .map(|item| item.0.keys().cloned().collect())
            .unwrap_or_default();
        let stored_first_seen = match target {
            Some(item) => optional_time(item, attr::FIRST_SEEN)?,
            None => None,
        };
        Ok(Self {
            traits: BTreeMap::new(),
            stored_first_seen,
            earliest_first_seen: None,
            timezone: None,
            context: None,
            target_has,
        })
    }

    fn absorb(&mut self, source: &Item) -> DomainResult<()> {
        for (name, value) in &source.0 {
            if name.starts_with(layout::TRAIT_ATTR_PREFIX) {
                self.traits.insert(name.clone(), value.clone());
            }
        }
        if let Some(first_seen) = optional_time(source, attr::FIRST_SEEN)? {
            self.earliest_first_seen = Some(
                self.earliest_first_seen
                    .map_or(first_seen, |known| known.min(first_seen)),
            );
        }
        if let Some(timezone) = source.get(attr::TIMEZONE) {
            self.timezone = Some(timezone.clone());
        }
        if let Some(context) = source.get(attr::CONTEXT) {
            self.context = Some(context.clone());
        }
        Ok(())
    }

    /// The update adding to the user what they lack. `touched_by_batch` names traits the batch itself set
    /// or removed on the user: those are the user's own, newer statements.
    fn into_update(self, touched_by_batch: impl Fn(&str) -> bool) -> Update {
        let has = |name: &str| self.target_has.contains(name);
        let mut update = Update::new();
        for (name, value) in self.traits {
            let trait_name = &name[layout::TRAIT_ATTR_PREFIX.len()..];
            if !has(&name) && !touched_by_batch(trait_name) {
                update = update.set_if_absent(&name, value);
            }
        }
        if let Some(earliest) = self.earliest_first_seen
            && self
                .stored_first_seen
                .is_none_or(|stored| earliest < stored)
        {
            update = update.set(attr::FIRST_SEEN, earliest.to_string());
        }
        for (name, value) in [
            (attr::TIMEZONE, self.timezone),
            (attr::CONTEXT, self.context),
        ] {
            if let Some(value) = value.filter(|_| !has(name)) {
                update = update.set_if_absent(name, value);
            }
        }
        update
    }
}

/// Up to [`MAX_COPIED_EVENTS`] of the newest hot events of `source_pk`, rewritten under `target_pk` with
/// the same sort key, body and expiry.
async fn recent_events(
    table: &dyn Table,
    source_pk: &str,
    target_pk: &str,
) -> DomainResult<Vec<WriteOp>> {
    let mut copies = Vec::new();
    let mut cursor = None;
    loop {
        let remaining = MAX_COPIED_EVENTS - copies.len();
        let page = table
            .query(
                Query::new(source_pk)
                    .prefix(layout::HOT_EVENT_SK_PREFIX)
                    .backward()
                    .limit(u32::try_from(remaining).unwrap_or(u32::MAX))
                    .after(cursor),
            )
            .await?;
        for mut item in page.items.into_iter().take(remaining) {
            item.set(tern_ports::table::PK, target_pk);
            copies.push(WriteOp::Put(item));
        }
        match page.cursor {
            Some(next) if copies.len() < MAX_COPIED_EVENTS => cursor = Some(next),
            _ => return Ok(copies),
        }
    }
}

fn link_item(workspace_id: &str, link: &NewLink<'_>) -> Item {
    Item::new(&layout::identity_link_key(workspace_id, link.linked_id))
        .with(attr::ENTITY, "identity_link")
        .with(attr::USER_ID, link.user_id)
        .with(attr::LINKED_AT, link.at.to_string())
}
