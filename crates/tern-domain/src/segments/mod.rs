//! Segments: the definition language, its validation, and membership evaluation over per-user state.
//!
//! The language is described in `docs/segments.md`. The pieces, all pure:
//! - [`SegmentDefinition`] (`definition.rs`, read and validated by `validate.rs`);
//! - [`UserState`] (`state.rs`): the per-user counters in time buckets that evaluation reads, updated
//!   incrementally as events arrive, never by rescanning a user's events;
//! - [`evaluate`] (`evaluate.rs`): membership now, and the next time it could change on its own;
//! - [`SegmentIndex`] (`index.rs`): which segments an input can affect, in dependency order, and what the
//!   state must keep for them.

pub mod backfill;
mod definition;
mod evaluate;
mod index;
pub mod membership;
pub mod preview;
pub mod realtime;
mod state;
pub mod store;
mod validate;

pub use definition::{
    Comparison, Condition, CountRule, CounterKey, DateBound, DefinitionError, Duration,
    DurationUnit, EngagementCondition, EngagementKind, EngagementTarget, EventType,
    LastEventCondition, MAX_DEPTH, PerformedCondition, PropertyFilter, PropertyPath, RandomBucket,
    SegmentDefinition, SubscriptionCondition, SubscriptionState, TargetKind,
};
pub use evaluate::{Evaluation, Memberships, UserFacts, evaluate, random_bucket_of};
pub use index::{Affected, IndexedSegment, Reevaluation, SegmentIndex};
pub use state::{
    Counter, EngagementFacts, EventFacts, LastOccurrence, MAX_BUCKETS, Requirements, Resolution,
    UserState,
};
pub use validate::parse_instant;
